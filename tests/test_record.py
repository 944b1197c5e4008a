"""Run records: one JSON file per run, complete, atomic, and honest about failures."""

import glob
import json
import os
import signal
import subprocess
import time

import pytest
import torch
from conftest import (
    assert_one_clear_line,
    free_port,
    logged_test_result,
    run_tiny,
    start_tiny_sasrec,
)

from recbole_ssl.quick_start import evaluate_checkpoint, run_recbole_ssl
from recbole_ssl.record import RunRecord, config_diff, load, setting_of

RECORD_KEYS = {
    "format",
    "version",
    "status",
    "kind",
    "transcribed",
    "model",
    "dataset",
    "seed",
    "setting",
    "config_diff",
    "config_files",
    "presets",
    "command",
    "cwd",
    "entry",
    "git",
    "versions",
    "machine",
    "start_time",
    "end_time",
    "wall_seconds",
    "valid_metric",
    "epochs",
    "epochs_run",
    "best_epoch",
    "best_valid",
    "test",
    "tested",
    "checkpoint",
    "log_file",
    "error",
    "config",
}


def records(folder, dataset="tiny"):
    return [load(f) for f in sorted(glob.glob(os.path.join(folder, dataset, "*.json")))]


def test_a_cli_run_writes_one_complete_record(tmp_path):
    out = run_tiny(
        tmp_path,
        "ICLRec",
        "--epochs=2",
        "--seed=7",
        "--cl_weight=0.2",
        "--show_progress=False",
        "--state=INFO",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = records(tmp_path / "results" / "runs")
    # and the tested model's metrics by user group (eval_groups, single process)
    assert set(record) == RECORD_KEYS | {"groups"}
    assert len(record["groups"]["groups"]) == 5
    assert record["status"] == "finished" and record["kind"] == "train"
    assert (record["model"], record["dataset"], record["seed"]) == ("ICLRec", "tiny", 7)
    # what the user changed, and only that; the seed and output keys are no setting
    assert record["setting"] == {"cl_weight": 0.2, "epochs": 2}
    assert record["config_diff"]["seed"] == 7
    assert "show_progress" in record["config_diff"]
    assert "--cl_weight=0.2" in record["command"]
    assert record["config"]["cl_weight"] == 0.2 and record["config"]["seed"] == 7
    assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40
    assert record["versions"]["recbole"] == "1.2.1"
    assert record["machine"]["cores"] == os.cpu_count()
    assert record["wall_seconds"] > 0 and record["end_time"] >= record["start_time"]
    # one entry per epoch, each with its time, named loss parts and validation
    assert [e["epoch"] for e in record["epochs"]] == [0, 1]
    assert record["epochs_run"] == 2
    for entry in record["epochs"]:
        assert set(entry["losses"]) == {"rec_loss", "cl_loss", "icl_loss"}
        assert entry["train_seconds"] > 0 and entry["valid_seconds"] > 0
        assert entry["valid_score"] == entry["valid"]["ndcg@20"]
        assert len(entry["valid"]) == 6
    # the test figures are those the run logged, of the checkpoint it saved at the
    # best epoch
    assert record["test"] == logged_test_result(out.stderr)
    assert record["tested"] == "best"
    checkpoint = torch.load(tmp_path / record["checkpoint"], weights_only=True)
    assert checkpoint["epoch"] == record["best_epoch"]
    assert os.path.isfile(tmp_path / record["log_file"])
    assert f"run record: {os.path.join('results', 'runs', 'tiny')}" in out.stderr
    assert not glob.glob(str(tmp_path / "results" / "runs" / "tiny" / ".*"))


def record_with_scores(scores, bigger=True):
    record = RunRecord.__new__(RunRecord)
    record.bigger = bigger
    record.data = {
        "epochs": [
            {"stage": "train", "epoch": i, "valid_score": s}
            for i, s in enumerate(scores)
        ]
    }
    return record


def test_best_epoch_is_recboles_last_best():
    scores = [0.1, 0.3, 0.2, 0.3, 0.25]  # RecBole's early stopping keeps a tie
    assert record_with_scores(scores).best_epoch() == 3
    assert record_with_scores(scores, bigger=False).best_epoch() == 0
    # a NaN score (stored as None) is never the best
    assert record_with_scores([None, 0.1, None]).best_epoch() == 1
    assert record_with_scores([None]).best_epoch() is None


def test_a_long_run_s_record_has_the_best_epoch_of_recbole_s_checkpoint(tmp_path):
    out = run_tiny(
        tmp_path, "SASRec", "--epochs=6", "--show_progress=False", "--state=INFO"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (record,) = records(tmp_path / "results" / "runs")
    checkpoint = torch.load(tmp_path / record["checkpoint"], weights_only=True)
    assert record["best_epoch"] == checkpoint["epoch"]
    assert record["best_valid"] == record["epochs"][record["best_epoch"]]["valid"]


def test_config_diff_ignores_values_equal_to_the_defaults(tiny_config):
    from recbole_ssl.config import Config

    config = Config(
        "SASRec",
        "tiny",
        config_dict=dict(
            tiny_config, learning_rate=0.001, n_layers=3, seed=5, flush_denormal=True
        ),
    )
    diff = config_diff(config)
    assert "learning_rate" not in diff  # the YAML default, set again
    assert diff["n_layers"] == 3 and diff["seed"] == 5 and diff["epochs"] == 1
    assert diff["flush_denormal"] is True  # in the record, not a setting of its own
    assert setting_of(diff) == {"n_layers": 3, "epochs": 1, "train_batch_size": 64}


def test_a_failing_run_leaves_a_failed_record(tiny_config, tmp_path):
    empty = tmp_path / "nowhere"
    empty.mkdir()
    with pytest.raises(Exception, match="not found"):
        run_recbole_ssl(
            "SASRec", "tiny", config_dict=dict(tiny_config, data_path=str(empty))
        )
    (record,) = records(tmp_path / "results" / "runs")
    assert record["status"] == "failed"
    assert record["error"].startswith("DatasetNotFoundError: dataset 'tiny' not found")
    assert record["test"] is None and record["end_time"] is not None


def test_an_interrupted_run_keeps_its_finished_epochs(
    tiny_config, tmp_path, monkeypatch
):
    from recbole_ssl.trainer.trainer import PluginTrainerMixin

    train_epoch = PluginTrainerMixin._train_epoch

    def stop_in_epoch_two(self, train_data, epoch_idx, **kwargs):
        if epoch_idx == 2:
            raise KeyboardInterrupt
        return train_epoch(self, train_data, epoch_idx, **kwargs)

    monkeypatch.setattr(PluginTrainerMixin, "_train_epoch", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, epochs=5))
    (record,) = records(tmp_path / "results" / "runs")
    assert record["status"] == "interrupted"
    assert [e["epoch"] for e in record["epochs"]] == [0, 1]
    assert all("valid" in e for e in record["epochs"]) and record["epochs_run"] == 2
    assert record["best_epoch"] in (0, 1) and record["test"] is None


def sigterm_after_two_epochs(tmp_path, *options, wait=120):
    """A long tiny SASRec run from the command line, sent SIGTERM once its record
    holds two epochs. Returns ``(exit code, stderr, the records folder)``."""
    process = start_tiny_sasrec(
        tmp_path,
        *options,
        "--epochs=500",
        "--stopping_step=1000",
        "--state=ERROR",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    folder = tmp_path / "results" / "runs"
    deadline = time.time() + wait
    while time.time() < deadline:
        found = records(folder) if folder.exists() else []
        if found and len(found[0]["epochs"]) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # the launcher only: it stops any ranks
    _, stderr = process.communicate(timeout=wait)
    return process.returncode, stderr, folder


def test_sigterm_ends_a_cli_run_as_interrupted(tmp_path):
    returncode, stderr, folder = sigterm_after_two_epochs(tmp_path)
    assert returncode == 128 + signal.SIGTERM, stderr[-2000:]
    (record,) = records(folder)
    assert record["status"] == "interrupted" and record["error"] == "SystemExit: 143"
    assert len(record["epochs"]) >= 2 and record["test"] is None


@pytest.mark.slow
def test_sigterm_ends_a_distributed_run_with_its_record(tmp_path):
    returncode, stderr, folder = sigterm_after_two_epochs(
        tmp_path, "--nproc=2", f"--port={free_port()}", wait=180
    )
    assert returncode != 0
    (record,) = records(folder)  # rank 0's, and only rank 0's
    assert record["status"] == "interrupted", stderr[-2000:]
    assert record["setting"]["nproc"] == 2 and len(record["epochs"]) >= 2


def test_record_false_writes_nothing(tiny_config, tmp_path):
    run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, record=False))
    assert not (tmp_path / "results").exists()


def test_record_dir_and_evaluate_records(tiny_config, tmp_path):
    folder = tmp_path / "elsewhere"
    config = dict(tiny_config, record_dir=str(folder))
    result = run_recbole_ssl("SASRec", "tiny", config_dict=config)
    (trained,) = records(folder)
    again = evaluate_checkpoint(trained["checkpoint"], {"record_dir": str(folder)})
    evaluated = [r for r in records(folder) if r["kind"] == "evaluate"]
    assert len(evaluated) == 1 and evaluated[0]["status"] == "finished"
    assert evaluated[0]["checkpoint"] == trained["checkpoint"]
    assert evaluated[0]["test"] == result["test_result"] == again["test_result"]
    assert (
        evaluated[0]["epochs"] == [] and evaluated[0]["entry"] == "evaluate_checkpoint"
    )


def test_a_run_that_saves_nothing_says_it_tested_the_last_epoch(tiny_config, tmp_path):
    run_recbole_ssl(
        "SASRec", "tiny", config_dict=dict(tiny_config, epochs=2), saved=False
    )
    (record,) = records(tmp_path / "results" / "runs")
    assert record["tested"] == "last" and record["checkpoint"] is None


def test_a_record_dir_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    out = run_tiny(tmp_path, "SASRec", "--epochs=1", "--record_dir=taken")
    assert_one_clear_line(out, "record_dir: cannot write the run record")


def test_s3rec_pretraining_alone_records_its_checkpoint(tiny_config, tmp_path):
    config = dict(tiny_config, pretrain_epochs=1, train_stage="pretrain")
    run_recbole_ssl("S3Rec", "tiny", config_dict=config)
    (record,) = records(tmp_path / "results" / "runs")
    assert "-pretrain-" in record["checkpoint"]
    assert os.path.isfile(record["checkpoint"]) and record["test"] is None
    assert record["epochs_run"] == 1 and record["epochs"][0]["stage"] == "pretrain"


def test_a_finetuning_names_the_run_that_saved_its_pre_model_path(
    tiny_config, tmp_path
):
    folder = tmp_path / "results" / "runs" / "tiny"
    config = dict(tiny_config, pretrain_epochs=2, train_stage="pretrain", seed=5)
    run_recbole_ssl("S3Rec", "tiny", config_dict=config)
    (name,) = os.listdir(folder)
    pretrained = load(folder / name)
    path = pretrained["checkpoint"]
    config = dict(tiny_config, train_stage="finetune", pre_model_path=path, seed=6)
    run_recbole_ssl("S3Rec", "tiny", config_dict=config)
    (other,) = set(os.listdir(folder)) - {name}
    assert load(folder / other)["pretraining"] == {
        "path": path,
        "record": name,
        "model": "S3Rec",
        "seed": 5,
        "epoch": 1,  # its last epoch, counted from 0
    }
    assert "pretraining" not in pretrained


def test_s3rec_records_both_stages(tiny_config, tmp_path):
    run_recbole_ssl("S3Rec", "tiny", config_dict=dict(tiny_config, pretrain_epochs=2))
    (record,) = records(tmp_path / "results" / "runs")
    assert [(e["stage"], e["epoch"]) for e in record["epochs"]] == [
        ("pretrain", 0),
        ("pretrain", 1),
        ("finetune", 0),
    ]
    assert "valid" not in record["epochs"][0] and "valid" in record["epochs"][2]
    assert set(record["epochs"][0]["losses"]) == {
        "aap_loss",
        "mip_loss",
        "map_loss",
        "sp_loss",
    }
    assert record["pretrain_epochs_run"] == 2 and record["epochs_run"] == 1
    assert record["best_epoch"] == 0
    assert os.path.isfile(record["checkpoint"])
    assert "-pretrain-" in record["pretrain_checkpoint"]
    assert os.path.isfile(record["pretrain_checkpoint"])


def test_tensorboard_dir_is_honoured(tiny_config, tmp_path):
    run_recbole_ssl(
        "SASRec", "tiny", config_dict=dict(tiny_config, tensorboard_dir="tb/here")
    )
    assert glob.glob(str(tmp_path / "tb" / "here" / "SASRec-tiny-*" / "events.*"))
    assert not (tmp_path / "log_tensorboard").exists()
    run_recbole_ssl("SASRec", "tiny", config_dict=tiny_config)  # RecBole's default
    assert glob.glob(str(tmp_path / "log_tensorboard" / "*" / "events.*"))


def test_load_rejects_what_is_not_a_record(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"status": "finished"}))
    with pytest.raises(ValueError, match="x.json: not a run record"):
        load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="x.json: not a readable run record"):
        load(path)


GOOD = {
    "format": "recbole-ssl run record",
    "status": "finished",
    "kind": "train",
    "model": "SASRec",
    "dataset": "toy",
    "seed": 1,
    "epochs": [{"stage": "train", "epoch": 0, "valid": {"ndcg@20": 0.1}}],
    "test": {"ndcg@20": 0.1},
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": None}, "'seed' must be an integer, got None"),
        ({"seed": "2020"}, "'seed' must be an integer, got '2020'"),
        ({"model": 3}, "'model' must be a string"),
        ({"test": {"ndcg@20": None}}, "test.ndcg@20 must be a number, got None"),
        ({"test": [0.1]}, "'test' must be an object or null"),
        ({"epochs": [{"epoch": 0}]}, "epochs[0] needs a 'stage' string"),
        ({"epochs": [{"stage": "train"}]}, "epochs[0] needs an integer 'epoch'"),
        ({"pretraining": "a.pth"}, "'pretraining' must be an object or null"),
        ({"pretraining": {"record": 3}}, "pretraining.record must be a string or null"),
        (
            {"pretraining": {"epoch": "9"}},
            "pretraining.epoch must be an integer or null",
        ),
    ],
)
def test_load_names_a_field_that_is_wrong(tmp_path, change, message):
    path = tmp_path / "r.json"
    load(path.write_text(json.dumps(GOOD)) and path)  # the good one loads
    path.write_text(json.dumps(dict(GOOD, **change)))
    with pytest.raises(ValueError) as error:
        load(path)
    assert str(error.value) == f"{path}: {message}" or message in str(error.value)
    assert str(error.value).startswith(f"{path}: ")
