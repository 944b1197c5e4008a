"""Any run resumes from its last checkpoint to the result of the uninterrupted run."""

import glob
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import (
    assert_one_clear_line,
    logged_test_result,
    run_tiny,
    start_tiny_sasrec,
)

from recbole_ssl.checkpoint import last_checkpoint_file, load_checkpoint
from recbole_ssl.errors import ConfigError
from recbole_ssl.quick_start import run_recbole_ssl
from recbole_ssl.randomness import (
    generator_from_state,
    generator_state,
    global_states,
    set_global_states,
)
from recbole_ssl.trainer.trainer import PluginTrainerMixin


class Killed(Exception):
    """Stands for the end of a process in the middle of a run."""


def kill_at(monkeypatch, stage, epoch):
    """The next run stops at the start of ``epoch`` of ``stage``, once its last
    checkpoint is saved and before the trainer's own work of that epoch."""
    before_epoch = PluginTrainerMixin.before_epoch

    def stopping(self, train_data, epoch_idx):
        if (self.stage, epoch_idx) == (stage, epoch):
            raise Killed
        before_epoch(self, train_data, epoch_idx)

    monkeypatch.setattr(PluginTrainerMixin, "before_epoch", stopping)


def records(tmp_path):
    return {
        path: json.loads(open(path).read())
        for path in glob.glob(str(tmp_path / "results/runs/tiny/*.json"))
    }


def history(record):
    """What a record says the run computed, epoch by epoch (no timings)."""
    return [
        (e["stage"], e["epoch"], e["losses"], e.get("valid")) for e in record["epochs"]
    ]


def weights(path):
    return load_checkpoint(path, "test")["state_dict"]


def assert_same_weights(one, other):
    assert one.keys() == other.keys()
    for name in one:
        assert torch.equal(one[name], other[name]), name


CASES = {  # model, settings, where the run is killed (its last epoch: kill's + 1)
    "SASRec": ("SASRec", {}, ("train", 2)),
    "CL4SRec": ("CL4SRec", {}, ("train", 2)),
    # the hybrid correlation from epoch 1, drawn among each item's top 2
    "CoSeRec": (
        "CoSeRec",
        {"correlation_warm_up": 1, "correlation_topk": 2},
        ("train", 2),
    ),
    # E-steps at epochs 1 and 3: epoch 2 trains with the intents of epoch 1's
    "ICLRec": (
        "ICLRec",
        {"num_intent_clusters": 8, "intent_warm_up": 1, "intent_frequency": 2},
        ("train", 2),
    ),
    "DSSRec": ("DSSRec", {}, ("train", 2)),
    # the slowest model here: killed in the second of two epochs
    "MMInfoRec": ("MMInfoRec", {"hidden_size": 32, "inner_size": 64}, ("train", 1)),
    "S3Rec-pretrain": ("S3Rec", {"pretrain_epochs": 3}, ("pretrain", 2)),
    # MIP's sampled negatives: their sampler's state travels with the checkpoint
    "S3Rec-pretrain-BCE": (
        "S3Rec",
        {"pretrain_epochs": 3, "pretrain_loss_type": "BCE"},
        ("pretrain", 2),
    ),
    "S3Rec-finetune": ("S3Rec", {"pretrain_epochs": 2}, ("finetune", 2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_run_resumes_bit_identical(
    case, tiny_config, tmp_path, monkeypatch, caplog, two_threads
):
    # two_threads: before take_rows, MMInfoRec's MINCE failed this test there
    model, settings, (stage, epoch) = CASES[case]
    # four batches an epoch (of about 1000 rows), so the shuffle's order matters
    config = dict(tiny_config, epochs=epoch + 1, train_batch_size=256, **settings)
    whole = run_recbole_ssl(
        model, "tiny", config_dict=dict(config, checkpoint_dir=str(tmp_path / "a"))
    )
    (whole_path,) = records(tmp_path)

    with monkeypatch.context() as patch:
        kill_at(patch, stage, epoch)
        with pytest.raises(Killed):
            killed = dict(config, checkpoint_dir=str(tmp_path / "b"))
            run_recbole_ssl(model, "tiny", config_dict=killed)
    (last,) = glob.glob(str(tmp_path / "b" / "*-last.pth"))
    saved = load_checkpoint(last, "test")
    assert (saved["stage"], saved["epoch"], saved["finished"]) == (stage, epoch - 1, 0)

    caplog.clear()
    with caplog.at_level("INFO"):
        resumed = run_recbole_ssl(resume=last, config_dict={"state": "INFO"})
    # the file the resumed run goes on writing, named where the log says so
    assert f"last checkpoint (resume=...): {last}" in caplog.text
    assert glob.glob(str(tmp_path / "b" / "*-last.pth")) == [last]
    assert resumed["best_valid_result"] == whole["best_valid_result"]
    assert resumed["test_result"] == whole["test_result"]
    # the same weights at the end and in the best checkpoint, bit for bit
    (whole_last,) = glob.glob(str(tmp_path / "a" / "*-last.pth"))
    assert_same_weights(weights(last), weights(whole_last))
    runs = records(tmp_path)
    whole_record = runs.pop(whole_path)
    (record,) = runs.values()  # the killed run's record, continued
    assert_same_weights(
        weights(record["checkpoint"]), weights(whole_record["checkpoint"])
    )
    assert record["status"] == "finished"
    assert record["resumes"][0]["previous_status"] == "failed"
    assert history(record) == history(whole_record)


def test_without_its_random_states_a_resumed_run_differs(
    tiny_config, tmp_path, monkeypatch
):
    """What the test above checks is not true of any resume: restoring weights,
    optimizer and epoch alone gives other weights."""
    config = dict(tiny_config, epochs=3, checkpoint_dir=str(tmp_path / "b"))
    whole = run_recbole_ssl("CL4SRec", "tiny", config_dict=config)
    (whole_last,) = glob.glob(str(tmp_path / "b" / "*-last.pth"))
    with monkeypatch.context() as patch:
        kill_at(patch, "train", 2)
        with pytest.raises(Killed):
            run_recbole_ssl("CL4SRec", "tiny", config_dict=config)
    (last,) = set(glob.glob(str(tmp_path / "b" / "*-last.pth"))) - {whole_last}
    monkeypatch.setattr(PluginTrainerMixin, "set_random_states", lambda *args: None)
    resumed = run_recbole_ssl(resume=last)
    differ = [
        k
        for k, v in weights(last).items()
        if not torch.equal(v, weights(whole_last)[k])
    ]
    assert differ
    assert resumed["best_valid_result"] is not None and whole is not None


def test_random_states_round_trip():
    generator = torch.Generator().manual_seed(7)
    saved_generator = generator_from_state(generator_state(generator))
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    states = global_states()
    first = (
        random.random(),
        np.random.rand(),
        torch.rand(1),
        torch.rand(1, generator=generator),
    )
    set_global_states(states)
    again = (
        random.random(),
        np.random.rand(),
        torch.rand(1),
        torch.rand(1, generator=saved_generator),
    )
    assert first == again
    assert generator_state(None) is None and generator_from_state(None) is None


def test_sigkill_leaves_a_loadable_last_checkpoint_and_the_run_resumes(tmp_path):
    """A run killed outright (SIGKILL, while it trains) resumes from the last complete
    checkpoint in its record; resuming a finished run only tests again."""
    out_log = open(tmp_path / "killed.log", "w")
    process = start_tiny_sasrec(
        tmp_path,
        "--epochs=6",
        "--stopping_step=6",
        stdout=out_log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            lasts = glob.glob(str(tmp_path / "saved" / "*-last.pth"))
            if lasts and load_checkpoint(lasts[0], "test")["epoch"] >= 2:
                break  # a reader never sees a half-written file
            assert process.poll() is None, open(tmp_path / "killed.log").read()[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    (last,) = lasts
    saved = load_checkpoint(last, "test")
    assert saved["epoch"] >= 2 and not saved["finished"]
    (record_file,) = glob.glob(str(tmp_path / "results/runs/tiny/*.json"))
    assert json.loads(open(record_file).read())["status"] == "running"

    out = run_tiny(tmp_path, "SASRec", f"--resume={last}", "--state=INFO")
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(open(record_file).read())
    assert glob.glob(str(tmp_path / "results/runs/tiny/*.json")) == [record_file]
    assert record["status"] == "finished" and record["epochs_run"] == 6
    assert record["resumes"][0]["previous_status"] == "running"
    assert [e["epoch"] for e in record["epochs"]] == list(range(6))
    assert load_checkpoint(last, "test")["finished"]

    again = run_recbole_ssl(resume=last)  # a finished run: tested, not trained
    assert again["test_result"] == logged_test_result(out.stderr)
    assert json.loads(open(record_file).read())["epochs"] == record["epochs"]


def test_resume_names_what_is_wrong(tmp_path, tiny_config):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    out = run_tiny(tmp_path, "SASRec", f"--resume={text}")
    assert_one_clear_line(
        out, f"resume: {text} is not a checkpoint saved by recbole_ssl"
    )
    assert "weights_only" not in out.stderr
    with pytest.raises(ConfigError, match="resume: checkpoint file not found"):
        run_recbole_ssl(resume=str(tmp_path / "none.pth"))
    run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, record=False))
    (best,) = [
        p
        for p in glob.glob(os.path.join(tiny_config["checkpoint_dir"], "*.pth"))
        if not p.endswith("-last.pth")
    ]
    assert os.path.exists(last_checkpoint_file(best))
    with pytest.raises(ConfigError, match="holds one epoch's weights"):
        run_recbole_ssl(resume=best)
    if not torch.cuda.is_available():  # a GPU run's last checkpoint, on a CPU
        checkpoint = torch.load(last_checkpoint_file(best), weights_only=True)
        checkpoint["random_states"][0]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
        on_gpu = tmp_path / "gpu-last.pth"
        torch.save(checkpoint, on_gpu)
        out = run_tiny(tmp_path, "SASRec", f"--resume={on_gpu}")
        assert_one_clear_line(
            out,
            f"resume: {on_gpu} was saved by a run on a GPU, whose random states "
            "cannot be restored without CUDA; resume it where CUDA is available, or "
            f"go on from its best epoch's weights (random states anew) with "
            f"resume={best}",
        )


def test_a_resumed_finetuning_still_names_its_pretraining(
    tiny_config, tmp_path, monkeypatch
):
    pretrain = dict(tiny_config, pretrain_epochs=1, train_stage="pretrain")
    run_recbole_ssl("S3Rec", "tiny", config_dict=pretrain)
    ((path, pretrained),) = records(tmp_path).items()
    config = dict(
        tiny_config,
        epochs=3,
        train_stage="finetune",
        pre_model_path=pretrained["checkpoint"],
        checkpoint_dir=str(tmp_path / "b"),
    )
    with monkeypatch.context() as patch:
        kill_at(patch, "finetune", 2)
        with pytest.raises(Killed):
            run_recbole_ssl("S3Rec", "tiny", config_dict=config)
    (last,) = glob.glob(str(tmp_path / "b" / "*-last.pth"))
    run_recbole_ssl(resume=last)
    runs = records(tmp_path)
    runs.pop(path)
    (record,) = runs.values()
    assert record["status"] == "finished" and len(record["resumes"]) == 1
    assert record["pretraining"]["record"] == os.path.basename(path)
    assert record["pretraining"]["path"] == pretrained["checkpoint"]
