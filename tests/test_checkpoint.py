"""Checkpoints hold plain types only and load under the installed torch's defaults."""

import glob
import os

import pytest
import torch
from conftest import assert_one_clear_line, build, logged_test_result, run_tiny

from recbole_ssl.checkpoint import last_checkpoint_file
from recbole_ssl.quick_start import (
    evaluate_checkpoint,
    load_data_and_model,
    run_recbole_ssl,
)
from recbole_ssl.trainer import Trainer
from recbole_ssl.utils import ConfigError


@pytest.fixture
def trained(tiny_config):
    result = run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, epochs=2))
    folder = tiny_config["checkpoint_dir"]
    (checkpoint,) = set(glob.glob(os.path.join(folder, "*.pth"))) - set(
        glob.glob(os.path.join(folder, "*-last.pth"))
    )
    return result, checkpoint


def test_checkpoint_loads_with_weights_only(trained):
    _, checkpoint_file = trained
    checkpoint = torch.load(checkpoint_file, weights_only=True)  # torch>=2.6 default
    assert checkpoint["config"]["model"] == "SASRec"
    assert checkpoint["config"]["MODEL_TYPE"] == "SEQUENTIAL"
    assert checkpoint["external_config"]["epochs"] == 2
    assert isinstance(checkpoint["best_valid_score"], float)
    assert "item_embedding.weight" in checkpoint["state_dict"]
    torch.load(checkpoint_file)  # and with no arguments at all


def test_load_data_and_model_reproduces_the_test_result(trained):
    result, checkpoint_file = trained
    config, model, _, _, _, test_data = load_data_and_model(checkpoint_file)
    saved = torch.load(checkpoint_file, weights_only=True)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    trainer = Trainer(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test_result"]


def test_evaluate_checkpoint_repeats_the_result_and_takes_another_protocol(trained):
    result, checkpoint_file = trained
    again = evaluate_checkpoint(checkpoint_file)
    assert again["test_result"] == result["test_result"]
    assert again["valid_result"] == result["best_valid_result"]
    sampled = evaluate_checkpoint(
        checkpoint_file,
        {"eval_args": {"mode": {"valid": "full", "test": "uni100"}}},
    )
    assert sampled["valid_result"] == result["best_valid_result"]
    # ranking against 100 sampled items is far easier than against all items
    assert sampled["test_result"]["hit@10"] > result["test_result"]["hit@10"]


def test_evaluate_from_the_command_line(trained, tmp_path, tiny_here):
    result, checkpoint_file = trained
    before = os.stat(checkpoint_file).st_mtime_ns
    out = run_tiny(tmp_path, "SASRec", f"--evaluate={checkpoint_file}", "--state=INFO")
    assert out.returncode == 0, out.stderr[-3000:]
    assert logged_test_result(out.stderr) == dict(result["test_result"])
    # nothing was trained or saved
    assert set(glob.glob(os.path.join(os.path.dirname(checkpoint_file), "*"))) == {
        checkpoint_file,
        last_checkpoint_file(checkpoint_file),
    }
    assert os.stat(checkpoint_file).st_mtime_ns == before
    out = tiny_here("SASRec", f"--evaluate={tmp_path / 'none.pth'}")
    assert_one_clear_line(out, "evaluate: checkpoint file not found")
    notes = tmp_path / "notes.pth"
    notes.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="is not a checkpoint saved by recbole_ssl"):
        load_data_and_model(str(notes))


def test_evaluate_checks_the_command_line_and_reads_config_files(
    trained, tmp_path, tiny_here
):
    """A mistyped key is one line naming it, not a silent evaluation under the
    defaults; a config file given with --evaluate applies."""
    result, checkpoint_file = trained
    out = tiny_here(
        "SASRec", f"--evaluate={checkpoint_file}", "--eval_arg={'mode':'uni100'}"
    )
    assert_one_clear_line(out, "--eval_arg (did you mean --eval_args?)")
    sampled = tmp_path / "sampled.yaml"
    sampled.write_text("eval_args:\n  mode: {valid: full, test: uni100}\n")
    out = run_tiny(
        tmp_path,
        "SASRec",
        f"--evaluate={checkpoint_file}",
        f"--config_files={sampled}",
        "--state=INFO",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hit10 = logged_test_result(out.stderr)["hit@10"]
    assert hit10 > result["test_result"]["hit@10"]  # 100 sampled items, not all


def test_resume_checkpoint(trained, tiny_config):
    _, checkpoint_file = trained
    config, model, _, train_data, valid_data, _ = load_data_and_model(checkpoint_file)
    trainer = Trainer(config, model)
    trainer.resume_checkpoint(checkpoint_file)
    saved = torch.load(checkpoint_file, weights_only=True)
    assert trainer.start_epoch == saved["epoch"] + 1
    assert trainer.best_valid_score == saved["best_valid_score"]
    config["epochs"] = trainer.start_epoch + 1
    trainer.epochs = config["epochs"]
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)


def test_foreign_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"config": {"model": "SASRec"}, "state_dict": {}}, path)
    with pytest.raises(ConfigError, match="not saved by recbole_ssl"):
        load_data_and_model(str(path))


@pytest.mark.parametrize("detect_anomaly", [False, True])
def test_training_runs_with_configured_anomaly_detection(
    tiny_config, monkeypatch, detect_anomaly
):
    import recbole.model.sequential_recommender  # noqa: F401  (its sine.py turns it on)

    from recbole_ssl.model import SASRec

    seen = []
    original = SASRec.calculate_loss

    def recording(self, interaction):
        seen.append(torch.is_anomaly_enabled())
        return original(self, interaction)

    monkeypatch.setattr(SASRec, "calculate_loss", recording)
    before = torch.is_anomaly_enabled()
    run_recbole_ssl(
        "SASRec",
        "tiny",
        config_dict=dict(tiny_config, detect_anomaly=detect_anomaly),
        saved=False,
    )
    assert seen and set(seen) == {detect_anomaly}
    assert torch.is_anomaly_enabled() == before  # the global state is left as it was


class _Started(Exception):
    """Raised by the first training epoch, once it has seen the weights."""


def weights_at_the_first_epoch(trainer, train_data, valid_data):
    """The model's tensors when ``trainer.fit`` starts its first epoch."""
    seen = {}

    def first_epoch(*args, **kwargs):
        seen.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        raise _Started

    trainer._train_epoch = first_epoch
    with pytest.raises(_Started):
        trainer.fit(train_data, valid_data, show_progress=False)
    trainer.tensorboard.close()
    return seen


def test_pre_model_path_starts_a_run_from_another_model_s_weights(
    tiny_config, tmp_path
):
    # DSSRec is SASRec's encoder and item table plus its intention layer: a SASRec
    # run can start from a DSSRec run's weights (the ICLRec paper's DSSRec baseline)
    dssrec = dict(tiny_config, checkpoint_dir=str(tmp_path / "dssrec"))
    run_recbole_ssl("DSSRec", "tiny", config_dict=dssrec)
    (path,) = set(glob.glob(str(tmp_path / "dssrec" / "*.pth"))) - set(
        glob.glob(str(tmp_path / "dssrec" / "*-last.pth"))
    )
    saved = torch.load(path, weights_only=True)["state_dict"]
    config, model, train_data, valid_data, _ = build(
        "SASRec", dict(tiny_config, pre_model_path=path)
    )
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    start = weights_at_the_first_epoch(Trainer(config, model), train_data, valid_data)
    assert set(start) < set(saved)  # all of SASRec's tensors, none of the layer's
    for name, tensor in start.items():
        assert torch.equal(tensor, saved[name]), name
    assert not torch.equal(
        fresh["item_embedding.weight"], saved["item_embedding.weight"]
    )

    # a resumed run goes on from its own weights: pre_model_path is not even read
    own = dict(tiny_config, checkpoint_dir=str(tmp_path / "own"))
    run_recbole_ssl("SASRec", "tiny", config_dict=own)
    (last,) = glob.glob(str(tmp_path / "own" / "*-last.pth"))
    missing = str(tmp_path / "nope.pth")
    config, model, train_data, valid_data, _ = build(
        "SASRec", dict(tiny_config, pre_model_path=missing)
    )
    trainer = Trainer(config, model)
    trainer.resume_checkpoint(last)
    trainer.fit(train_data, valid_data, show_progress=False)  # finished: no epoch
    trainer.tensorboard.close()
    resumed = torch.load(last, weights_only=True)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, resumed[name]), name

    # a file that is not there: one clear error before any training
    config, model, train_data, valid_data, _ = build(
        "SASRec", dict(tiny_config, pre_model_path=missing)
    )
    with pytest.raises(ConfigError, match="pre_model_path: checkpoint file not found"):
        weights_at_the_first_epoch(Trainer(config, model), train_data, valid_data)


def test_pre_model_path_from_the_command_line(trained, tiny_here):
    _, checkpoint = trained
    out = tiny_here(
        "SASRec", f"--pre_model_path={checkpoint}", "--epochs=1",
        "--show_progress=False", "--state=INFO",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"tensors from {checkpoint}" in out.stderr + out.stdout
