"""Tests for the S3-Rec -> RecBole atomic converter (recbole_ssl.data.convert)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from recbole_ssl.data import convert as convert_module
from recbole_ssl.data.convert import ConvertError, convert, main

REPO_ROOT = Path(__file__).resolve().parents[1]
BEAUTY_DIR = REPO_ROOT / "dataset_atomic" / "amazon-beauty"
TINY_DIR = Path(__file__).resolve().parent / "data" / "tiny"

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER = "item_id:token\tattributes:token_seq"

GOOD_TXT = "3 10 20 30\n1 20 40 20\n\n\n"
GOOD_ATTRS = {"10": [5, 1], "20": [2], "30": [1, 7]}  # item 40 has none


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def good_inputs(folder: Path) -> tuple[Path, Path]:
    return write(folder, "in.txt", GOOD_TXT), write(
        folder, "attrs.json", json.dumps(GOOD_ATTRS)
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- output


def test_exact_statistics_and_contents(tmp_path):
    txt, attrs = good_inputs(tmp_path)
    stats = convert(txt, tmp_path / "out", "toy", attributes_path=attrs)
    assert stats == {"users": 2, "items": 4, "interactions": 6, "attributes": 4}
    inter = (tmp_path / "out" / "toy" / "toy.inter").read_text(encoding="utf-8")
    assert inter == (
        f"{INTER_HEADER}\n"
        "3\t10\t0\n3\t20\t1\n3\t30\t2\n"  # users in file order, not sorted
        "1\t20\t0\n1\t40\t1\n1\t20\t2\n"  # repeated item kept, positions as timestamps
    )
    item = (tmp_path / "out" / "toy" / "toy.item").read_text(encoding="utf-8")
    assert item == f"{ITEM_HEADER}\n10\t5 1\n20\t2\n30\t1 7\n40\t\n"
    assert leftovers(tmp_path) == []


def test_without_attributes_writes_only_inter(tmp_path):
    txt = write(tmp_path, "in.txt", "1 2 3\n")
    stats = convert(txt, tmp_path, "toy")
    assert stats == {"users": 1, "items": 2, "interactions": 2, "attributes": 0}
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["toy.inter"]


def test_shipped_amazon_beauty_statistics():
    lines = (BEAUTY_DIR / "amazon-beauty.inter").read_text().splitlines()
    assert lines[0] == INTER_HEADER
    rows = [line.split("\t") for line in lines[1:]]
    users = Counter(row[0] for row in rows)
    assert len(rows) == 198_502
    assert len(users) == 22_363
    assert len({row[1] for row in rows}) == 12_101
    assert min(users.values()) >= 5
    item_lines = (BEAUTY_DIR / "amazon-beauty.item").read_text().splitlines()
    assert item_lines[0] == ITEM_HEADER
    items = [line.split("\t") for line in item_lines[1:]]
    assert len(items) == 12_101
    assert {item for item, _ in items} == {row[1] for row in rows}
    assert len({a for _, attrs in items for a in attrs.split()}) == 637


def test_shipped_tiny_dataset():
    lines = (TINY_DIR / "tiny.inter").read_text().splitlines()
    assert lines[0] == INTER_HEADER
    users = Counter(line.split("\t")[0] for line in lines[1:])
    assert len(users) == 289 and len(lines) - 1 == 3_165
    assert min(users.values()) >= 3 and max(users.values()) <= 48
    items = (TINY_DIR / "tiny.item").read_text().splitlines()
    assert items[0] == ITEM_HEADER and len(items) - 1 == 2_248


# --------------------------------------------------------------------------- errors

TXT_ERRORS = [
    ("1 2 3\n4\n", ["in.txt:2", "1 field"]),
    ("1 2 3\n\n2 5\n", ["in.txt:2", "0 field"]),  # blank line inside the file
    ("1 2\nu7 3 4\n", ["in.txt:2", "user", "'u7'"]),
    ("1 2 x3\n", ["in.txt:1", "item", "'x3'"]),
    ("1 2\n2 1.5\n", ["in.txt:2", "'1.5'"]),
    ("0 2\n", ["in.txt:1", "user", "'0'"]),
    ("1 2\n2 3 -4\n", ["in.txt:2", "item", "'-4'"]),
    ("1 2\n2 3\n1 4\n", ["in.txt:3", "user id 1", "line 1"]),
    ("\n\n", ["in.txt", "no user lines"]),
]


@pytest.mark.parametrize("text,expected", TXT_ERRORS)
def test_bad_sequence_file(tmp_path, text, expected):
    txt = write(tmp_path, "in.txt", text)
    with pytest.raises(ConvertError) as info:
        convert(txt, tmp_path / "out", "toy")
    for fragment in expected:
        assert fragment in str(info.value)
    assert not (tmp_path / "out").exists()


JSON_ERRORS = [
    ('{"1": [1],\n "2": [2,,]}', ["attrs.json:2", "malformed JSON"]),
    ("[1, 2]", ["attrs.json", "JSON object"]),
    ('{"1": [1, "a"]}', ["attrs.json", "key '1'"]),
    ('{"1": 3}', ["attrs.json", "key '1'"]),
    ('{"1": [true]}', ["attrs.json", "key '1'"]),
    ('{"1": {}}', ["attrs.json", "key '1'"]),
    ('{"x": [1]}', ["attrs.json", "key 'x'"]),
    ('{"1": [1], "99": [2]}', ["attrs.json", "item id 99", "does not occur"]),
    ('{"1": [1], "01": [2]}', ["attrs.json", "item id 1", "twice"]),
]


@pytest.mark.parametrize("text,expected", JSON_ERRORS)
def test_bad_attribute_file(tmp_path, text, expected):
    txt = write(tmp_path, "in.txt", "1 1 2\n")
    attrs = write(tmp_path, "attrs.json", text)
    with pytest.raises(ConvertError) as info:
        convert(txt, tmp_path / "out", "toy", attributes_path=attrs)
    for fragment in expected:
        assert fragment in str(info.value)
    assert not (tmp_path / "out").exists()


def test_missing_files(tmp_path):
    with pytest.raises(ConvertError, match="nope.txt"):
        convert(tmp_path / "nope.txt", tmp_path, "toy")
    txt = write(tmp_path, "in.txt", "1 2\n")
    with pytest.raises(ConvertError, match="nope.json"):
        convert(txt, tmp_path, "toy", attributes_path=tmp_path / "nope.json")
    assert not (tmp_path / "toy").exists()


def test_bad_name_rejected(tmp_path):
    txt = write(tmp_path, "in.txt", "1 2\n")
    with pytest.raises(ConvertError, match="name"):
        convert(txt, tmp_path, "../escape")


# --------------------------------------------------------------------------- atomicity


def fail_second_write(monkeypatch):
    real = convert_module._write_lines
    calls = []

    def flaky(path, lines):
        calls.append(path)
        if len(calls) == 2:
            path.write_text("partial")  # a half-written temporary file
            raise OSError(28, "No space left on device")
        real(path, lines)

    monkeypatch.setattr(convert_module, "_write_lines", flaky)
    return calls


def test_failed_write_leaves_existing_output_untouched(tmp_path, monkeypatch):
    txt, attrs = good_inputs(tmp_path)
    folder = tmp_path / "out" / "toy"
    folder.mkdir(parents=True)
    old = write(folder, "toy.inter", "old contents\n")
    unrelated = write(folder, "notes.md", "keep me\n")
    calls = fail_second_write(monkeypatch)
    with pytest.raises(ConvertError, match="No space left"):
        convert(txt, tmp_path / "out", "toy", attributes_path=attrs)
    assert len(calls) == 2
    assert old.read_text() == "old contents\n"
    assert unrelated.read_text() == "keep me\n"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.md", "toy.inter"]


def test_failed_write_into_new_folder_leaves_nothing(tmp_path, monkeypatch):
    txt, attrs = good_inputs(tmp_path)
    fail_second_write(monkeypatch)
    with pytest.raises(ConvertError):
        convert(txt, tmp_path / "out", "toy", attributes_path=attrs)
    assert not (tmp_path / "out" / "toy").exists()
    assert leftovers(tmp_path) == []


def test_invalid_input_leaves_existing_output_untouched(tmp_path):
    txt, attrs = good_inputs(tmp_path)
    convert(txt, tmp_path, "toy", attributes_path=attrs)
    before = {p.name: p.read_bytes() for p in (tmp_path / "toy").iterdir()}
    write(tmp_path, "attrs.json", '{"10": [1], "999": [2]}')
    with pytest.raises(ConvertError, match="999"):
        convert(txt, tmp_path, "toy", attributes_path=attrs)
    after = {p.name: p.read_bytes() for p in (tmp_path / "toy").iterdir()}
    assert after == before


# --------------------------------------------------------------------------- CLI


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
    )
    command = [sys.executable, "-m", "recbole_ssl.data.convert", *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_bad_file_exits_2_with_one_line(tmp_path):
    write(tmp_path, "bad.txt", "1 2 3\n1 4 5\n")
    result = run_cli(
        tmp_path, "--input", "bad.txt", "--output-dir", "out", "--name", "t"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bad.txt:2" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_good_file_exits_0(tmp_path):
    good_inputs(tmp_path)
    args = ["--input", "in.txt", "--attributes", "attrs.json"]
    result = run_cli(tmp_path, *args, "--output-dir", "out", "--name", "toy")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "2 users" in result.stderr and "6 interactions" in result.stderr
    assert (
        (tmp_path / "out" / "toy" / "toy.inter")
        .read_text()
        .startswith(INTER_HEADER + "\n3\t10\t0\n")
    )
    assert (tmp_path / "out" / "toy" / "toy.item").is_file()


def test_main_in_process_returns_exit_code(tmp_path, capsys):
    txt = write(tmp_path, "in.txt", "1 2\n1 3\n")
    out = str(tmp_path / "out")
    assert main(["--input", str(txt), "--output-dir", out, "--name", "t"]) == 2
    assert "in.txt:2" in capsys.readouterr().err
    write(tmp_path, "in.txt", "1 2\n2 3\n")
    assert main(["--input", str(txt), "--output-dir", out, "--name", "t"]) == 0
    assert (tmp_path / "out" / "t" / "t.inter").is_file()
