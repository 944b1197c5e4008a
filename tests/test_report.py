"""The report renders results pages and figures from run records, and --check catches
pages that the records no longer match."""

import copy
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_DIR, run_tiny

from recbole_ssl import report
from recbole_ssl.record import load


def run_report(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "recbole_ssl.report", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def fake_record(
    model, seed, ndcg20, setting=None, curve=(0.01, 0.02), status="finished"
):
    test = {m: round(ndcg20 * (1 + i) / 6, 4) for i, m in enumerate(report.METRICS)}
    test["ndcg@20"] = ndcg20
    return {
        "format": "recbole-ssl run record",
        "version": 1,
        "status": status,
        "kind": "train",
        "transcribed": False,
        "model": model,
        "dataset": "toy",
        "seed": seed,
        "setting": setting or {},
        "command": f"python run_recbole_ssl.py --model={model} --seed={seed}",
        "epochs": [
            {
                "stage": "train",
                "epoch": i,
                "train_seconds": 2.0 + i,
                "valid_score": v,
                "valid": {"ndcg@20": v},
            }
            for i, v in enumerate(curve)
        ],
        "best_epoch": len(curve) - 1,
        "test": test,
        "machine": {"cpu": "toy cpu", "cores": 2, "threads": 1},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "wall_seconds": 120.0,
        "start_time": "2026-12-01T10:00:00+00:00",
    }


def write_records(folder, records):
    os.makedirs(folder / "toy", exist_ok=True)
    for i, record in enumerate(records):
        path = folder / "toy" / f"{record['model']}-{record['seed']}-{i}.json"
        path.write_text(json.dumps(record))


def test_rows_group_by_setting_with_mean_and_sample_std(tmp_path):
    write_records(
        tmp_path / "runs",
        [
            fake_record("SASRec", 1, 0.1),
            fake_record("SASRec", 2, 0.2),
            fake_record("SASRec", 3, 0.3),
            fake_record("SASRec", 1, 0.5, setting={"n_layers": 3}),
            # output keys and the seed never make a setting of their own
            fake_record("ICLRec", 1, 0.25, setting={"state": "INFO"}),
            fake_record("ICLRec", 2, 0.35),
        ],
    )
    rows = report.build_rows(report.load_records(str(tmp_path / "runs"), "toy"))
    assert [(r.model, r.setting, len(r.records)) for r in rows] == [
        ("SASRec", {}, 3),
        ("SASRec", {"n_layers": 3}, 1),
        ("ICLRec", {}, 2),
    ]
    mean, std = rows[0].mean_std("ndcg@20")
    assert mean == pytest.approx(0.2) and std == pytest.approx(0.1)  # by hand
    assert rows[1].mean_std("ndcg@20") == (0.5, None)
    assert rows[0].seconds_per_epoch() == pytest.approx(2.5)
    # a run on a GPU adds its seeds but not its seconds to the CPU runs' timing
    gpu = fake_record("SASRec", 4, 0.2)
    gpu["machine"]["gpu"] = "toy gpu"
    for epoch in gpu["epochs"]:
        epoch["train_seconds"] = 0.1
    sasrec = [fake_record("SASRec", seed, 0.1 * seed) for seed in (1, 2, 3)]
    write_records(tmp_path / "gpu", sasrec + [gpu])
    on_gpu = report.build_rows(report.load_records(str(tmp_path / "gpu"), "toy"))[0]
    assert len(on_gpu.records) == 4
    assert on_gpu.seconds_per_epoch() == pytest.approx(2.5)
    text = report.results_section(rows, {}, "toy", str(tmp_path))
    assert "| **SASRec** | defaults | 1/2/3 |" in text
    assert "0.2000 ± 0.1000" in text
    assert "| SASRec | n_layers=3 | 1 |" in text


def test_paper_ratio_uses_the_first_full_ranking_source(tmp_path):
    papers = {
        "toy": {
            "SASRec": [
                {
                    "source": "sampled",
                    "protocol": "sampled-99",
                    "metrics": {"ndcg@20": 0.5},
                },
                {"source": "T1", "protocol": "full", "metrics": {"ndcg@20": 0.04}},
            ]
        }
    }
    write_records(tmp_path / "runs", [fake_record("SASRec", 1, 0.06)])
    rows = report.build_rows(report.load_records(str(tmp_path / "runs"), "toy"))
    text = report.results_section(rows, papers, "toy", str(tmp_path))
    assert "| 0.0400 (NDCG@20) | 1.50x |" in text


def test_superseded_and_unfinished_records_are_listed_not_averaged(tmp_path):
    first = fake_record("SASRec", 1, 0.1, status="interrupted")
    first["superseded_by"] = "SASRec-1-1.json"
    running = fake_record("SASRec", 2, 0.9, status="running")
    running["test"] = None
    write_records(tmp_path / "runs", [first, fake_record("SASRec", 1, 0.1), running])
    records = report.load_records(str(tmp_path / "runs"), "toy")
    (row,) = report.build_rows(records)
    assert len(row.records) == 1 and not row.cut_off
    runs = report.runs_section(records, str(tmp_path))
    assert runs.count("| SASRec |") == 2 and "superseded" in runs
    assert "running" not in runs  # in progress: left out until it ends


def test_a_tiny_run_is_rendered_and_check_catches_a_new_record(tmp_path):
    out = run_tiny(tmp_path, "SASRec", "--epochs=1", "--show_progress=False")
    assert out.returncode == 0, out.stderr[-2000:]
    page = tmp_path / "results" / "tiny.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(
        "# Tiny\n\nProse by hand.\n\n<!-- report:begin results -->\nold\n"
        "<!-- report:end results -->\n\nMore prose.\n"
    )
    (readme := tmp_path / "README.md").write_text(
        "# r\n<!-- report:begin tiny:models -->\n<!-- report:end tiny:models -->\n"
    )
    stale = run_report(tmp_path, "--check")
    assert stale.returncode == 1 and "tiny.md: out of date" in stale.stderr

    assert run_report(tmp_path).returncode == 0
    text = page.read_text()
    assert text.startswith("# Tiny\n\nProse by hand.\n\n") and "More prose." in text
    assert "| **SASRec** | epochs=1 | 2020 |" in text
    (record_file,) = glob.glob(str(tmp_path / "results" / "runs" / "tiny" / "*.json"))
    record = load(record_file)
    assert f"{record['test']['ndcg@20']:.4f}" in text
    for name in ("test-ndcg", "valid-curves", "valid-curves-settings"):
        figure = tmp_path / "results" / "figures" / f"tiny-{name}.png"
        assert report.png_digest(str(figure)), figure
    assert "figures/tiny-test-ndcg.png" in text
    assert "results/figures/tiny-test-ndcg.png" in readme.read_text()
    assert "| [SASRec](" not in readme.read_text()  # no model page in this folder
    assert "| SASRec | no | 1.00x (CE) | " in readme.read_text()
    checked = run_report(tmp_path, "--check")
    assert checked.returncode == 0, checked.stderr

    # another seed's record: the page and the figures are stale until re-rendered
    added = copy.deepcopy(record)
    added["seed"] = 2021
    added["test"]["ndcg@20"] = 0.5
    with open(record_file.replace(".json", "-2021.json"), "w") as f:
        json.dump(added, f)
    stale = run_report(tmp_path, "--check")
    assert stale.returncode == 1
    assert "tiny.md: out of date with the records (results, runs)" in stale.stderr
    assert "tiny-test-ndcg.png: out of date" in stale.stderr
    assert "README.md: out of date" in stale.stderr
    assert run_report(tmp_path).returncode == 0
    assert "| **SASRec** | epochs=1 | 2020/2021 |" in page.read_text()
    assert run_report(tmp_path, "--check").returncode == 0


def test_check_leaves_out_a_dataset_with_records_but_no_page(tmp_path):
    """A user's first run (the README's getting started on lastfm) leaves records of a
    dataset with no page: --check of all datasets says so and passes; rendering that
    dataset makes its page, which --check then covers."""
    write_records(tmp_path / "results" / "runs", [fake_record("SASRec", 1, 0.1)])
    out = run_report(tmp_path, "--check")
    assert out.returncode == 0, out.stderr
    assert "toy: records but no page" in out.stderr
    assert run_report(tmp_path, "--check", "--dataset", "toy").returncode == 1
    assert run_report(tmp_path, "--dataset", "toy").returncode == 0
    assert run_report(tmp_path, "--check").returncode == 0
    (tmp_path / "results" / "toy.md").write_text("# toy\n")  # a page out of date
    assert run_report(tmp_path, "--check").returncode == 1


def test_a_bad_record_is_one_line(tmp_path):
    folder = tmp_path / "results" / "runs" / "toy"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{ not json")
    out = run_report(tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "broken.json" in out.stderr


def test_the_committed_pages_are_up_to_date():
    out = run_report(REPO_DIR, "--check")
    assert out.returncode == 0, out.stderr


def test_running_and_last_epoch_records_stay_out_of_the_rows(tmp_path, capsys):
    running = fake_record("SASRec", 2, 0.9, status="running")
    last = fake_record("SASRec", 3, 0.8)
    last["tested"] = "last"
    write_records(tmp_path / "runs", [fake_record("SASRec", 1, 0.1), running, last])
    records = report.load_records(str(tmp_path / "runs"), "toy")
    assert "1 record(s) of toy still 'running' left out" in capsys.readouterr().err
    assert len(records) == 2
    (row,) = report.build_rows(records)
    assert [r["seed"] for r in row.records] == [1]
    assert "last epoch tested" in report.runs_section(records, str(tmp_path))


def test_a_bar_in_a_setting_does_not_break_the_table(tmp_path):
    write_records(
        tmp_path / "runs", [fake_record("SASRec", 1, 0.1, setting={"a": "x|y"})]
    )
    rows = report.build_rows(report.load_records(str(tmp_path / "runs"), "toy"))
    header, _, line = report.results_section(rows, {}, "toy", str(tmp_path)).split(
        "\n"
    )[:3]
    assert "a=x\\|y" in line and line.count(" | ") == header.count(" | ")


@pytest.mark.parametrize(
    "page, message",
    [
        (
            "<!-- report:begin results -->\nprose\n",
            "section 'results' needs exactly one",
        ),
        (
            "<!-- report:end runs -->\n<!-- report:begin runs -->\n",
            "section 'runs' ends before it begins",
        ),
        (
            "<!-- report:begin runs -->\n<!-- report:end runs -->\n" * 2,
            "(found 2 and 2)",
        ),
    ],
)
def test_a_page_with_broken_markers_is_one_line_and_untouched(tmp_path, page, message):
    write_records(tmp_path / "results" / "runs", [fake_record("SASRec", 1, 0.1)])
    path = tmp_path / "results" / "toy.md"
    path.write_text(page)
    out = run_report(tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr and "toy.md" in out.stderr
    assert path.read_text() == page


def test_a_record_with_a_wrong_field_is_one_line(tmp_path):
    broken = fake_record("SASRec", 1, 0.1)
    broken["test"]["ndcg@20"] = None
    write_records(tmp_path / "results" / "runs", [broken])
    out = run_report(tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "test.ndcg@20 must be a number, got None" in out.stderr


def test_welch_p_against_the_sasrec_row_of_the_same_loss(tmp_path):
    records = [fake_record("SASRec", s, v) for s, v in ((1, 1.0), (2, 2.0), (3, 3.0))]
    records += [fake_record("ICLRec", s, v) for s, v in ((1, 4.0), (2, 5.0), (3, 6.0))]
    bce = {"loss_type": "BCE"}
    for model, values in (("SASRec", (0.1, 0.3)), ("CL4SRec", (0.2, 0.2))):
        for seed, value in enumerate(values):
            record = fake_record(model, seed, value, setting=bce)
            record["config"] = bce
            records.append(record)
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    against = report.baselines(rows)
    assert [against[loss].setting for loss in ("CE", "BCE")] == [{}, bce]
    iclrec = next(r for r in rows if r.model == "ICLRec")
    # R: t.test(c(4, 5, 6), c(1, 2, 3)): t = 3.6742, df = 4, p-value = 0.02131
    p = report.welch_p(iclrec.values("ndcg@20"), against["CE"].values("ndcg@20"))
    assert p == pytest.approx(0.02131, abs=5e-5)
    table = report.results_section(rows, {}, "toy", str(tmp_path)).splitlines()
    (iclrec_line,) = [line for line in table if line.startswith("| **ICLRec** |")]
    assert "| 0.021 |" in iclrec_line
    assert "| (baseline) |" in table[2] and table[2].startswith("| **SASRec** |")
    # CL4SRec's two equal values have no spread: no p, rather than a false one
    assert report.welch_p([0.2, 0.2], [0.2, 0.2]) is None
    assert report.welch_p([0.2], [0.1, 0.3]) is None


def test_a_preset_row_is_tested_against_sasrec_s_preset_whatever_its_loss(tmp_path):
    """MMInfoRec's preset trains MINCE alone under loss_type CE: its paper, like the
    claims table, compares it with SASRec trained with BCE (SASRec's preset), not
    with SASRec's CE defaults."""
    records = [fake_record("SASRec", s, v) for s, v in ((1, 1.0), (2, 2.0), (3, 3.0))]
    records += [preset_record("SASRec", s, v) for s, v in ((1, 0.1), (2, 0.2))]
    records += [preset_record("MMInfoRec", s, v) for s, v in ((1, 0.3), (2, 0.5))]
    # a SASRec variant of the preset, with more seeds: never the baseline
    variant = [preset_record("SASRec", s, 0.9) for s in (1, 2, 3)]
    for record in variant:
        record["setting"] = dict(record["setting"], n_heads=1)
    for i, record in enumerate(records + variant):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records + variant)
    mminforec = next(r for r in rows if r.model == "MMInfoRec")
    assert mminforec.loss_type == "CE" and mminforec.protocol == "preset"
    against = report.baselines(rows)
    assert against["preset"] is against["BCE"] is not against["CE"]
    assert against["preset"].setting == {"preset": "SASRec-paper"}
    table = report.results_section(rows, {}, "toy", str(tmp_path)).splitlines()
    (line,) = [x for x in table if x.startswith("| **MMInfoRec** |")]
    # by hand: t = 0.25 / sqrt(0.02 / 2 + 0.005 / 2) = 2.2361, Welch's df = 1.4706;
    # p = I_{df / (df + t^2)}(df / 2, 1 / 2) = 0.19873 (mpmath.betainc)
    p = report.welch_p([0.3, 0.5], [0.1, 0.2])
    assert p == pytest.approx(0.19873, abs=5e-5) and "| 0.2 |" in line
    # the groups: the preset's checkpoints beside SASRec's preset, not its CE
    for record, values in zip(
        records, ([0.5] * 3,) * 3 + ([0.1] * 3,) * 2 + ([0.2] * 3,) * 2, strict=True
    ):
        record["groups"] = group_record("SASRec", 1, "CE", values)["groups"]
        record["checkpoint"] = record["_path"]
    series = report.group_evaluations(records)[1]
    assert list(series) == [
        ("SASRec", "CE"),
        ("SASRec", "paper preset"),
        ("MMInfoRec", "paper preset"),
    ]
    (line,) = [
        x
        for x in report.groups_section(records).splitlines()
        if x.startswith("| MMInfoRec |")
    ]
    assert (
        line
        == "| MMInfoRec | paper preset | 2 | 0.2000 (+100%) | 0.2000 (+100%) | 0.2000 (+100%) |"
    )


def test_a_preset_run_is_its_own_row_named_by_the_preset():
    preset = report.preset_values("SASRec-paper")
    assert preset["loss_type"] == "BCE"
    record = fake_record("SASRec", 1, 0.05, setting=dict(preset, seed=3))
    record["presets"] = ["SASRec-paper"]
    assert report.setting_key(record) == json.dumps({"preset": "SASRec-paper"})
    record["setting"] = dict(preset, epochs=10)  # one key more than the preset
    record["_path"] = "run.json"
    (row,) = report.build_rows([record])
    assert report.describe_setting(row.setting) == "preset SASRec-paper, epochs=10"


def preset_record(model, seed, value):
    """A finished run of ``<model>-paper`` (BCE) with test NDCG@20 ``value``."""
    preset = report.preset_values(f"{model}-paper")
    record = fake_record(model, seed, value, setting=dict(preset))
    record["presets"] = [f"{model}-paper"]
    record["config"] = {"loss_type": "CE", **preset}  # as recorded: every key
    return record


def test_claimed_gains_pair_each_figure_with_sasrec_of_the_same_table():
    papers = {
        "toy": {
            "SASRec": [
                {"source": "A", "protocol": "full", "metrics": {"ndcg@20": 0.04}},
                {"source": "ICLRec paper, T1", "protocol": "full",
                 "metrics": {"ndcg@10": 0.02, "ndcg@20": 0.05}},
                {"source": "S", "protocol": "sampled-99", "metrics": {"ndcg@10": 0.3}},
            ],
            "ICLRec": [
                {"source": "A", "protocol": "full", "metrics": {"ndcg@10": 0.03}},
                {"source": "S", "protocol": "full", "metrics": {"ndcg@10": 0.4}},
                {"source": "ICLRec paper, T1", "protocol": "full",
                 "metrics": {"ndcg@10": 0.025, "ndcg@20": 0.06}},
            ],
        }
    }  # fmt: skip
    gains = report.claimed_gains(papers, "toy", "ICLRec")
    # A has no common metric; S differs in protocol; the own paper comes first
    assert [(g[0], g[2]) for g in gains] == [("ICLRec paper, T1", "ndcg@20")]
    assert gains[0][3] == pytest.approx(0.2)  # 0.06 / 0.05 - 1, by hand


@pytest.mark.parametrize(
    "iclrec, claimed, word",
    [
        ((4.0, 5.0, 6.0), 0.5, "yes"),  # +150%, p = 0.021, above half the claim
        ((4.0, 5.0, 6.0), 4.0, "partly"),  # below half of a +400% claim
        ((1.5, 2.5, 2.0), 0.5, "no (tie)"),  # p = 1
        ((-3.0, -2.0, -1.0), 0.5, "no (behind)"),  # p = 0.008
        ((5.0,), 0.5, "too few seeds"),
    ],
)
def test_verdict_words_by_hand(iclrec, claimed, word):
    records = [fake_record("SASRec", s, v) for s, v in ((1, 1.0), (2, 2.0), (3, 3.0))]
    records += [fake_record("ICLRec", s, v) for s, v in enumerate(iclrec)]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    sasrec, iclrec_row = rows
    gain, p, got = report.verdict(iclrec_row, sasrec, claimed, "ndcg@20")
    assert got == word
    assert gain == pytest.approx(sum(iclrec) / len(iclrec) / 2.0 - 1)
    assert report.verdict(None, sasrec, claimed, "ndcg@20")[2] == "not run"


def test_a_setting_holding_every_preset_value_is_that_preset():
    """E.g. the evaluation record of a preset run's checkpoint, whose settings come
    from the checkpoint rather than from the preset file."""
    values = dict(report.preset_values("ICLRec-paper"))
    record = fake_record("ICLRec", 1, 0.5, setting=dict(values, eval_step=2))
    assert json.loads(report.setting_key(record)) == {
        "preset": "ICLRec-paper",
        "eval_step": 2,
    }
    values.pop("fnm")  # one value short: not the preset
    record = fake_record("ICLRec", 1, 0.5, setting=values)
    assert "preset" not in json.loads(report.setting_key(record))


def test_a_recorded_configuration_holding_every_preset_value_is_that_preset():
    """As a real record has it: the setting names only the keys that differ from the
    defaults (a preset repeats some defaults, e.g. train_neg_num 1), the full
    configuration is under ``config``."""
    values = dict(report.preset_values("ICLRec-paper"))
    assert values["train_neg_num"] == 1  # a default the setting leaves out
    config = dict(values, eval_step=2, topk=[5, 10, 20])
    setting = {"loss_type": values["loss_type"], "eval_step": 2}
    record = fake_record("ICLRec", 1, 0.5, setting=setting)
    record["config"] = config
    assert json.loads(report.setting_key(record)) == {
        "preset": "ICLRec-paper",
        "eval_step": 2,
    }
    record["config"] = dict(config, train_neg_num=2)  # one value off: not the preset
    assert "preset" not in json.loads(report.setting_key(record))


def test_fine_tunings_of_per_seed_pretrainings_of_one_setting_are_one_row(tmp_path):
    """S3-Rec fine-tuned from pre_model_path: each seed from its own seed's
    pretraining (another file each). Runs whose pretraining records are among the
    records share a row named by that pretraining's setting; a checkpoint without a
    record here (another code's, or a record not kept) keeps its path."""

    def pretraining(seed, setting):
        return fake_record("S3Rec", seed, 0.02, setting=setting)

    def finetuning(seed, value, path, source, epoch=99):
        record = fake_record(
            "S3Rec", seed, value, setting={"pre_model_path": path, "epochs": 50}
        )
        record["pretraining"] = dict(path=path, record=source, seed=seed, epoch=epoch)
        return record

    records = [
        pretraining(1, {"pretrain_epochs": 7}),
        pretraining(2, {"pretrain_epochs": 7}),
        pretraining(3, {"pretrain_epochs": 9}),
        finetuning(1, 0.03, "a.pth", "S3Rec-1-0.json"),
        finetuning(2, 0.05, "b.pth", "S3Rec-2-1.json"),
        # a pretraining of another setting, and one whose record is not here
        finetuning(3, 0.07, "c.pth", "S3Rec-3-2.json"),
        finetuning(4, 0.09, "d.pth", "elsewhere.json"),
        # the seed-1 pretraining cut at another epoch; and another seed's
        finetuning(5, 0.11, "a4.pth", "S3Rec-1-0.json", epoch=3),
        finetuning(6, 0.13, "a.pth", "S3Rec-1-0.json"),
    ]
    write_records(tmp_path / "runs", records)
    rows = report.build_rows(report.load_records(str(tmp_path / "runs"), "toy"))
    finetuned = {
        report.describe_setting(r.setting): sorted(x["seed"] for x in r.records)
        for r in rows
        if "pretrain_epochs" not in r.setting
    }
    assert finetuned == {
        "epochs=50, pretraining=(pretrain_epochs=7; 100 epochs; seed own)": [1, 2],
        "epochs=50, pretraining=(pretrain_epochs=9; 100 epochs; seed own)": [3],
        "epochs=50, pre_model_path=d.pth": [4],
        "epochs=50, pretraining=(pretrain_epochs=7; 4 epochs; seed 1)": [5],
        "epochs=50, pretraining=(pretrain_epochs=7; 100 epochs; seed 1)": [6],
    }
    (both,) = [r for r in rows if "pretraining" in r.setting and len(r.records) == 2]
    assert both.mean_std("ndcg@20") == (
        pytest.approx(0.04),
        pytest.approx(0.01414, 1e-3),
    )


def test_a_preset_key_set_back_to_its_default_is_named():
    """The weak-ICL run: ``--icl_similarity=cos`` on top of ICLRec-paper (dot). cos is
    ICLRec's YAML default, so the record's setting leaves it out; the row must still
    say the run differs from the preset there."""
    values = dict(report.preset_values("ICLRec-paper"))
    assert values["icl_similarity"] == "dot"
    record = fake_record("ICLRec", 1, 0.5, setting={"icl_weight": 0.05})
    record["presets"] = ["ICLRec-paper"]
    record["config"] = dict(values, icl_similarity="cos", icl_weight=0.05)
    assert json.loads(report.setting_key(record)) == {
        "preset": "ICLRec-paper",
        "icl_similarity": "cos",
        "icl_weight": 0.05,
    }
    record["config"] = dict(values)  # the preset itself: nothing more to name
    record["setting"] = {}
    assert json.loads(report.setting_key(record)) == {"preset": "ICLRec-paper"}


def test_a_preset_key_newer_than_the_run_counts_as_its_default():
    """A preset that gains a key (MMInfoRec's input_norm False, the authors' form)
    leaves the runs before it in a row of their own: their recorded configuration has
    no such key, so they ran with the model's YAML default."""
    values = dict(report.preset_values("ICLRec-paper"))
    assert values["icl_similarity"] == "dot"  # ICLRec's YAML default: cos
    record = fake_record("ICLRec", 1, 0.5, setting={})
    record["presets"] = ["ICLRec-paper"]
    record["config"] = {k: v for k, v in values.items() if k != "icl_similarity"}
    assert json.loads(report.setting_key(record)) == {
        "preset": "ICLRec-paper",
        "icl_similarity": "cos",
    }
    record["config"] = {k: v for k, v in values.items() if k != "train_neg_num"}
    # overall.yaml's default is the preset's value: nothing to name
    assert json.loads(report.setting_key(record)) == {"preset": "ICLRec-paper"}


def test_a_preset_s_execution_keys_do_not_decide_its_row(monkeypatch):
    """A preset that turns on flush_denormal (how the CPU computes, not a setting)
    still holds the runs made without it."""
    values = dict(report.preset_values("ICLRec-paper"))
    monkeypatch.setitem(
        report._PRESETS, "ICLRec-paper", dict(values, flush_denormal=True)
    )
    assert "flush_denormal" not in report.preset_values("ICLRec-paper")
    record = fake_record("ICLRec", 1, 0.5, setting={})
    record["presets"] = ["ICLRec-paper"]
    record["config"] = dict(values, flush_denormal=False)
    assert json.loads(report.setting_key(record)) == {"preset": "ICLRec-paper"}
    record["presets"] = []  # holding every (setting) value of the preset
    assert json.loads(report.setting_key(record)) == {"preset": "ICLRec-paper"}


def test_claims_read_the_presets_and_the_headline_under_ce():
    records = [fake_record("SASRec", s, 1.0 + s) for s in (1, 2, 3)]
    records += [fake_record("ICLRec", s, 1.0 + s) for s in (1, 2, 3)]
    records += [preset_record("SASRec", s, 1.0 + s) for s in (1, 2, 3)]
    records += [preset_record("ICLRec", s, 4.0 + s) for s in (1, 2, 3)]
    # an extra key makes another row, which the verdict ignores
    extra = preset_record("ICLRec", 1, 100.0)
    extra["setting"]["epochs"] = 3
    records.append(extra)
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    chosen = report.protocol_rows(rows)
    assert chosen[("ICLRec", "preset")].setting == {"preset": "ICLRec-paper"}
    assert chosen[("ICLRec", "CE")].setting == {}
    papers = {
        "toy": {
            m: [{"source": "ICLRec paper", "protocol": "full",
                 "metrics": {"ndcg@20": v}}]
            for m, v in (("SASRec", 0.04), ("ICLRec", 0.05))
        }
    }  # fmt: skip
    text = report.claims_section(rows, papers, "toy")
    (line,) = [x for x in text.splitlines() if x.startswith("| ICLRec |")]
    # BCE: (5, 6, 7) against (2, 3, 4): +100%, p = 0.021; CE: the same values, a tie
    assert "| +25.0% (ICLRec paper) | NDCG@20 | +100.0%, p=0.021 | yes |" in line
    assert line.endswith("| +0.0%, p=1 | no (tie) |")


def test_the_claims_in_words_follow_the_verdicts():
    words = {
        "preset": {"A": "yes", "B": "no (tie)", "C": "not run", "D": "not run"},
        "CE": {"A": "no (behind)", "B": "partly", "C": "too few seeds"},
    }
    assert report.claims_summary(words) == (
        "Under each paper's preset, the claimed gain holds for A; B ties SASRec; "
        "C and D are not run. Under the plugin's CE, a smaller gain than claimed "
        "holds for B; A falls behind SASRec; C has too few seeds to decide."
    )
    # the rendered claims block carries it: no sentence about the table typed by hand
    records = [fake_record("SASRec", s, 1.0 + s) for s in (1, 2, 3)]
    records += [fake_record("ICLRec", s, 1.0 + s) for s in (1, 2, 3)]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    text = report.claims_section(report.build_rows(records), {}, "toy")
    assert "Under the plugin's CE, ICLRec ties SASRec." in text
    assert "Under each paper's preset, ICLRec is not run." in text


def group_record(model, seed, loss, values, start="2026-12-01T10:00:00"):
    """An evaluation record of ``python -m recbole_ssl.groups`` with NDCG@20 per group."""
    record = fake_record(model, seed, sum(values) / len(values))
    bounds = [(1, 3), (4, 5), (6, 9)]
    record.update(
        kind="evaluate",
        config={"loss_type": loss},
        checkpoint=f"saved/{model}-{seed}-{loss}.pth",
        start_time=start,
        groups={
            "by": "train_length",
            "groups": [
                {
                    "group": g,
                    "users": 10,
                    "min_length": low,
                    "max_length": high,
                    "metrics": {"ndcg@20": v},
                }
                for g, ((low, high), v) in enumerate(zip(bounds, values, strict=True))
            ],
        },
    )
    return record


def test_groups_average_checkpoints_and_compare_with_sasrec_of_the_same_loss(tmp_path):
    records = [
        group_record("SASRec", 1, "BCE", [0.02, 0.04, 0.05]),
        group_record("SASRec", 2, "BCE", [0.04, 0.04, 0.05]),
        group_record("ICLRec", 1, "BCE", [0.045, 0.05, 0.05]),
        group_record("ICLRec", 1, "CE", [0.1, 0.1, 0.1]),
        # the same checkpoint evaluated earlier: the newer record counts
        group_record("ICLRec", 1, "BCE", [0.9, 0.9, 0.9], start="2026-11-01T10:00:00"),
    ]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    bounds, series = report.group_evaluations(records)
    assert bounds == [(1, 3), (4, 5), (6, 9)]
    assert list(series) == [("SASRec", "BCE"), ("ICLRec", "BCE"), ("ICLRec", "CE")]
    assert series[("ICLRec", "BCE")] == [[0.045, 0.05, 0.05]]
    text = report.groups_section(records)
    (line,) = [x for x in text.splitlines() if x.startswith("| ICLRec | BCE |")]
    # SASRec BCE means 0.03, 0.04, 0.05: +50%, +25%, +0% by hand
    assert line == (
        "| ICLRec | BCE | 1 | 0.0450 (+50%) | 0.0500 (+25%) | 0.0500 (+0%) |"
    )
    (line,) = [x for x in text.splitlines() if x.startswith("| ICLRec | CE |")]
    assert "(+" not in line  # no SASRec under CE to compare with
    assert report.group_evaluations([fake_record("SASRec", 1, 0.1)]) == (None, {})


def test_the_groups_figure_and_section_appear_once_there_are_groups(tmp_path):
    records = [fake_record("SASRec", 1, 0.05)]
    write_records(tmp_path / "runs", records)
    pages, figures = report.render("toy", str(tmp_path / "runs"), str(tmp_path))
    assert not any(path.endswith("-groups.png") for path in figures)
    assert "report:begin groups" not in next(iter(pages.values()))
    write_records(
        tmp_path / "runs", records + [group_record("SASRec", 1, "CE", [0.1] * 3)]
    )
    pages, figures = report.render("toy", str(tmp_path / "runs"), str(tmp_path))
    assert any(path.endswith("toy-groups.png") for path in figures)
    page = next(iter(pages.values()))
    assert "report:begin groups" in page and "| SASRec | CE | 1 |" in page


def test_a_seed_recorded_twice_in_one_row_is_an_error_until_one_is_superseded():
    """A rerun counted as another seed would inflate the seeds behind a p-value."""
    first = dict(fake_record("SASRec", 2022, 0.5), _path="a.json")
    again = dict(fake_record("SASRec", 2022, 0.5), _path="b.json")
    other = dict(fake_record("SASRec", 2021, 0.4), _path="c.json")
    with pytest.raises(report.ReportError, match="seed 2022 recorded more than once"):
        report.build_rows([first, again, other])
    first["superseded_by"] = "b.json"
    (row,) = report.build_rows([first, again, other])
    assert sorted(r["seed"] for r in row.records) == [2021, 2022]


def test_published_figures_carry_their_notes():
    papers = {
        "toy": {
            "SASRec": [{"source": "P1", "protocol": "full", "metrics": {"ndcg@20": 0.04}}],
            "DSSRec": [
                {"source": "P1", "protocol": "full", "metrics": {"ndcg@20": 0.05},
                 "note": "another pipeline"},
                {"source": "P2", "protocol": "sampled-99", "metrics": {"ndcg@10": 0.3},
                 "note": "sampled figure"},
            ],
        }
    }  # fmt: skip
    text = report.papers_section(papers, "toy", {"SASRec", "DSSRec"})
    lines = text.splitlines()
    (row,) = [x for x in lines if x.startswith("| DSSRec |")]
    assert row.startswith("| DSSRec | P1 (1) | full |")
    assert "1. DSSRec, P1: another pipeline" in lines
    # the table keeps full ranking only; the note of the sampled figure says so
    assert not [x for x in lines if x.startswith("| DSSRec | P2")]
    assert "2. DSSRec, P2 (sampled-99, not in the table): sampled figure" in lines
    (sasrec,) = [x for x in lines if x.startswith("| SASRec |")]
    assert "(" not in sasrec


def test_a_claim_names_the_note_of_its_source():
    papers = {
        "toy": {
            "SASRec": [{"source": "P1", "protocol": "full", "metrics": {"ndcg@20": 0.04}}],
            "CL4SRec": [{"source": "P1", "protocol": "full", "metrics": {"ndcg@20": 0.044},
                         "note": "first"}],
            "ICLRec": [{"source": "P1", "protocol": "full", "metrics": {"ndcg@20": 0.05},
                        "note": "another pipeline"}],
        }
    }  # fmt: skip
    records = [fake_record(m, s, 1.0 + s) for m in ("SASRec", "ICLRec") for s in (1, 2)]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    # numbered over the models on the page: CL4SRec has no run but a claim, so its
    # note comes first
    (line,) = [
        x for x in report.claims_section(rows, papers, "toy").splitlines()
        if x.startswith("| ICLRec |")
    ]  # fmt: skip
    assert "| +25.0% (P1, note 2) |" in line
    text = report.papers_section(papers, "toy", report.page_models(rows, papers, "toy"))
    assert "2. ICLRec, P1: another pipeline" in text.splitlines()


def test_every_claim_note_is_the_note_listed_under_its_number():
    # notes on two models (written in the file against MODEL_ORDER), one on a sampled
    # figure that the table leaves out, and a model with a claim but no run
    full = {"source": "P1", "protocol": "full"}
    papers = {
        "toy": {
            "MMInfoRec": [dict(full, metrics={"ndcg@20": 0.06}, note="mm")],
            "ICLRec": [
                dict(full, metrics={"ndcg@20": 0.05}, note="icl"),
                {"source": "P2", "protocol": "sampled-99", "note": "icl sampled",
                 "metrics": {"ndcg@10": 0.4}},
            ],
            "SASRec": [
                dict(full, metrics={"ndcg@20": 0.04}),
                {"source": "P2", "protocol": "sampled-99", "metrics": {"ndcg@10": 0.3}},
            ],
        }
    }  # fmt: skip
    records = [fake_record(m, s, 1.0 + s) for m in ("SASRec", "ICLRec") for s in (1, 2)]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    models = report.page_models(rows, papers, "toy")
    assert models == {"SASRec", "ICLRec", "MMInfoRec"}  # MMInfoRec: a claim, no run
    listed = {}
    for line in report.papers_section(papers, "toy", models).splitlines():
        match = re.match(
            r"(\d+)\. (\w+), (P\d)( \(sampled-99, not in the table\))?: ", line
        )
        if match:
            listed[int(match.group(1))] = (match.group(2), match.group(3))
    assert listed == {1: ("ICLRec", "P1"), 2: ("ICLRec", "P2"), 3: ("MMInfoRec", "P1")}
    claims = report.claims_section(rows, papers, "toy")
    cited = re.findall(r"\((P\d)(?:, sampled-99)?, note (\d+)\)", claims)
    by_model = {
        line.split("|")[1].strip(): re.findall(
            r"\((P\d)(?:, sampled-99)?, note (\d+)\)", line
        )
        for line in claims.splitlines()
        if line.startswith("| ") and "note" in line
    }
    assert len(cited) == 3
    for model, notes in by_model.items():
        for source, number in notes:
            assert listed[int(number)] == (model, source)


def test_each_variant_is_tested_against_its_model_s_defaults_or_its_preset(tmp_path):
    records = [fake_record("ICLRec", s, v) for s, v in ((1, 1.0), (2, 2.0), (3, 3.0))]
    layer = {"n_layers": 1}
    records += [fake_record("ICLRec", s, v, setting=layer) for s, v in ((1, 4.0), (2, 5.0), (3, 6.0))]  # fmt: skip
    records += [fake_record("ICLRec", 1, 0.5, setting={"icl_weight": 0.5})]
    # equal figures on both sides: no p, and not for want of seeds
    drop = {"hidden_dropout_prob": 0.3}
    records += [fake_record("SASRec", s, 0.5, setting=drop) for s in (1, 2)]
    records += [fake_record("SASRec", s, 0.5, setting=dict(drop, n_heads=1)) for s in (1, 2)]  # fmt: skip
    # one layer more changed: against the defaults and against its closest part
    both = {"n_layers": 1, "crop_ratio": 0.2}
    records += [fake_record("ICLRec", s, v, setting=both) for s, v in ((1, 2.0), (2, 2.2))]  # fmt: skip
    records += [fake_record("S3Rec", s, v) for s, v in ((1, 2.0), (2, 2.2))]
    isp = {"item_attribute": None}
    records += [fake_record("S3Rec", s, v, setting=isp) for s, v in ((1, 1.0), (2, 1.1))]  # fmt: skip
    records += [preset_record("SASRec", s, v) for s, v in ((1, 0.1), (2, 0.2))]
    heads = [preset_record("SASRec", s, v) for s, v in ((1, 0.15), (2, 0.25))]
    for record in heads:
        record["setting"] = dict(record["setting"], n_heads=1)
    records += heads
    # a SASRec defaults row with other numbers: a preset variant must not meet it
    records += [fake_record("SASRec", s, 9.0 + s) for s in (1, 2)]
    for i, record in enumerate(records):
        record["_path"] = f"{i}.json"
    rows = report.build_rows(records)
    table = report.variants_section(rows).splitlines()
    lines = {}
    for line in table:
        if line.startswith("| "):
            lines.setdefault(line.split(" | ")[1], []).append(line)
    assert lines.pop("hidden_dropout_prob=0.3, n_heads=1")[1].endswith(
        "| 2 / 2 | 0.5000 | 0.5000 | +0.0% |  | untested (no spread) |"
    )
    # the references themselves are no variants
    assert set(lines) == {
        "setting",
        "hidden_dropout_prob=0.3",
        "crop_ratio=0.2, n_layers=1",
        "n_layers=1",
        "icl_weight=0.5",
        "item_attribute=None",
        "preset SASRec-paper, n_heads=1",
    }
    # by hand: 2.1 / 2 - 1 = +5%, 2.1 / 5 - 1 = -58%; t = 0.1 / sqrt(0.02 / 2 + 1 / 3)
    # = 0.17066 and -2.9 / the same = -4.9493, Welch's df = 2.1180, p = 0.87941 and
    # 0.034232 (mpmath.betainc, as below)
    assert report.welch_p([2.0, 2.2], [1.0, 2.0, 3.0]) == pytest.approx(
        0.87941, abs=5e-6
    )
    assert report.welch_p([2.0, 2.2], [4.0, 5.0, 6.0]) == pytest.approx(
        0.034232, abs=5e-7
    )
    assert [line.split(" | ")[2:] for line in lines["crop_ratio=0.2, n_layers=1"]] == [
        ["defaults", "2 / 3", "2.1000", "2.0000", "+5.0%", "0.88", "tie |"],
        ["n_layers=1", "2 / 3", "2.1000", "5.0000", "-58.0%", "0.034", "behind |"],
    ]
    # one reference each for the others: a preset's variant never meets the defaults
    assert [k for k, v in lines.items() if len(v) > 1] == ["crop_ratio=0.2, n_layers=1"]
    lines = {k: v[0] for k, v in lines.items()}
    # R: t.test(c(4, 5, 6), c(1, 2, 3)): p-value = 0.02131; the means 5 and 2
    assert lines["n_layers=1"] == (
        "| ICLRec | n_layers=1 | defaults | 3 / 3 | 5.0000 | 2.0000 | +150.0% "
        "| 0.021 | ahead |"
    )
    assert lines["icl_weight=0.5"].endswith("| 1 / 3 | 0.5000 | 2.0000 | -75.0% |  | untested (one seed) |")  # fmt: skip
    # by hand: t = -1.05 / sqrt(0.005 / 2 + 0.02 / 2) = -9.3915, Welch's df = 1.4706;
    # p = I_{df / (df + t^2)}(df / 2, 1 / 2) = 0.027375 (mpmath.betainc)
    assert report.welch_p([1.0, 1.1], [2.0, 2.2]) == pytest.approx(0.027375, abs=5e-6)
    assert lines["item_attribute=None"] == (
        "| S3Rec_ISP | item_attribute=None | S3Rec defaults | 2 / 2 | 1.0500 | 2.1000 "
        "| -50.0% | 0.027 | behind |"
    )
    # against the preset's own row, not SASRec's defaults (10 and 11: "behind"); by
    # hand: t = 0.05 / sqrt(0.005) = 0.7071, df = 2, p = 0.55279 (mpmath.betainc)
    assert report.welch_p([0.15, 0.25], [0.1, 0.2]) == pytest.approx(0.55279, abs=5e-6)
    assert lines["preset SASRec-paper, n_heads=1"] == (
        "| SASRec | preset SASRec-paper, n_heads=1 | preset SASRec-paper | 2 / 2 "
        "| 0.2000 | 0.1500 | +33.3% | 0.55 | tie |"
    )
    # the page gets the section between the claims and the rest
    write_records(tmp_path / "runs", records)
    pages, _ = report.render("toy", str(tmp_path / "runs"), str(tmp_path))
    (text,) = pages.values()
    assert "| ICLRec | n_layers=1 | defaults | 3 / 3 |" in text
    assert text.index("report:begin claims") < text.index("report:begin variants")


def test_a_page_without_variants_gets_no_variants_section(tmp_path):
    records = [fake_record(m, s, 0.05) for m in ("SASRec", "ICLRec") for s in (1, 2)]
    write_records(tmp_path / "runs", records)
    pages, _ = report.render("toy", str(tmp_path / "runs"), str(tmp_path))
    (text,) = pages.values()
    assert "report:begin claims" in text and "report:begin variants" not in text
