"""The walkthrough of docs/own-dataset.md and the README's getting-started block, run as
written: their commands and YAML are read from the pages, on a small dataset made from
the tests' tiny one (so the pages cannot drift from what works)."""

import json
import math
import re
import shlex
import subprocess
import sys

import pytest
from conftest import DATA_DIR, REPO_DIR, logged_test_result

from recbole_ssl.record import load

WALKTHROUGH = REPO_DIR / "docs" / "own-dataset.md"


def blocks(path, language, after):
    """The ``language`` code blocks of ``path`` under the heading ``after``."""
    text = path.read_text()
    start = text.index(after)
    stop = text.find("\n## ", start + len(after))
    section = text[start : stop if stop >= 0 else None]
    return re.findall(rf"```{language}\n(.*?)\n```", section, re.S)


def commands(block):
    """The command lines of a bash block (comments and blank lines left out)."""
    return [
        line.split("  #")[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def run_as_written(line, cwd):
    """Run one documented command line: ``python`` is this interpreter and
    ``run_recbole_ssl.py`` the repository's, wherever the test runs."""
    argv = shlex.split(line)
    assert argv[0] == "python", line
    argv[0] = sys.executable
    if argv[1] == "run_recbole_ssl.py":
        argv[1] = str(REPO_DIR / "run_recbole_ssl.py")
        argv.append("--show_progress=False")
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def tiny_rows():
    """``(interactions, attributes)`` of the tiny dataset: ``[(user, item, time)]``
    and ``{item: [attribute, ...]}``."""
    inter = (DATA_DIR / "tiny" / "tiny.inter").read_text().splitlines()[1:]
    rows = [tuple(line.split("\t")) for line in inter]
    item = (DATA_DIR / "tiny" / "tiny.item").read_text().splitlines()[1:]
    attributes = {}
    for line in item:
        key, _, values = line.partition("\t")
        attributes[key] = values.split()
    return rows, attributes


def assert_trained(out):
    assert out.returncode == 0, out.stderr[-3000:]
    values = logged_test_result(out.stderr).values()
    assert len(values) == 6 and all(math.isfinite(v) for v in values)


def test_walkthrough_from_the_papers_txt_format(tmp_path):
    rows, attributes = tiny_rows()
    sequences = {}
    for user, item, _time in sorted(rows, key=lambda r: (int(r[0]), float(r[2]))):
        sequences.setdefault(user, []).append(item)
    (tmp_path / "mydata.txt").write_text(
        "".join(f"{u} {' '.join(items)}\n" for u, items in sequences.items())
    )
    (tmp_path / "mydata_item2attributes.json").write_text(
        json.dumps({k: [int(a) for a in v] for k, v in attributes.items() if v})
    )
    (block,) = blocks(WALKTHROUGH, "bash", "## From the papers' `.txt` format")
    lines = commands(block)
    assert [line.split()[1] for line in lines] == ["-m", "run_recbole_ssl.py"]
    for line in lines:
        out = run_as_written(line, tmp_path)
        assert out.returncode == 0, (line, out.stderr[-3000:])
    assert_trained(out)
    header = (tmp_path / "dataset" / "mydata" / "mydata.inter").read_text()
    assert header.startswith("user_id:token\titem_id:token\ttimestamp:float\n")
    # the converted data are the tiny data: as many interactions, same users
    (record,) = (tmp_path / "results" / "runs" / "mydata").glob("*.json")
    assert load(record)["status"] == "finished"
    assert header.count("\n") - 1 == len(rows)


def test_walkthrough_with_field_names_of_ones_own(tmp_path):
    rows, attributes = tiny_rows()
    folder = tmp_path / "dataset" / "shop"
    folder.mkdir(parents=True)
    (folder / "shop.inter").write_text(
        "session:token\tsong:token\tts:float\n"
        + "".join(f"s{u}\tt{i}\t{t}\n" for u, i, t in rows)
    )
    (folder / "shop.item").write_text(
        "song:token\tgenre:token_seq\n"
        + "".join(f"t{k}\t{' '.join(v)}\n" for k, v in attributes.items())
    )
    section = "## Atomic files with names of your own"
    (config,) = blocks(WALKTHROUGH, "yaml", section)
    (tmp_path / "shop.yaml").write_text(config + "\n")
    (block,) = blocks(WALKTHROUGH, "bash", section)
    lines = commands(block)
    assert {line.split()[2] for line in lines} == {
        "--model=SASRec",
        "--model=ICLRec",
        "--model=S3Rec",
    }
    for line in lines:
        out = run_as_written(line, tmp_path)
        assert_trained(out)
        if "--model=S3Rec" in line:
            # the attributes were read under their own name: AAP and MAP trained
            assert "aap_loss" in out.stderr and "ISP" not in out.stderr
        if "--model=ICLRec" in line:
            assert "into 16 intents" in out.stderr
    records = [load(p) for p in (tmp_path / "results" / "runs" / "shop").glob("*")]
    assert sorted(r["model"] for r in records) == ["ICLRec", "S3Rec", "SASRec"]
    assert all(r["config"]["USER_ID_FIELD"] == "session" for r in records)


@pytest.mark.slow
def test_readme_getting_started_runs(tmp_path):
    (block,) = blocks(REPO_DIR / "README.md", "bash", "## Getting started")
    runs = [
        line for line in commands(block) if line.startswith("python run_recbole_ssl")
    ]
    assert runs, "no run in the README's getting-started block"
    for line in runs:
        assert_trained(run_as_written(line, tmp_path))
    assert list((tmp_path / "saved").glob("*.pth"))  # where the README says
    assert list((tmp_path / "log").rglob("*.log"))
