"""Test metrics by training-length group: equal groups, ranks that are RecBole's, and an
evaluation record holding them."""

import glob
import json
import os
import shlex

import numpy as np
import pytest

from recbole_ssl.groups import main
from recbole_ssl.quick_start import run_recbole_ssl
from recbole_ssl.trainer.user_groups import equal_groups, metrics_of


def test_equal_groups_by_length_then_user():
    lengths = np.array([5, 1, 3, 3, 9, 1, 2])
    users = np.array([10, 20, 30, 5, 1, 2, 7])
    group = equal_groups(lengths, users, 3)
    # sorted: (1, u2) (1, u20) (2, u7) | (3, u5) (3, u30) | (5, u10) (9, u1)
    assert group.tolist() == [2, 0, 1, 1, 2, 0, 0]
    assert np.bincount(group).tolist() == [3, 2, 2]


def test_metrics_by_hand():
    ranks = np.array([0, 1, 5, 30])
    result = metrics_of(ranks, [5, 20])
    assert result["hit@5"] == 0.5 and result["hit@20"] == 0.75
    assert result["ndcg@5"] == pytest.approx((1 + 1 / np.log2(3)) / 4)
    assert result["ndcg@20"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(7)) / 4)


def test_groups_of_a_checkpoint_are_recorded_and_add_up(tiny_config, tmp_path, capsys):
    result = run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, epochs=2))
    folder = tiny_config["checkpoint_dir"]
    (best,) = [p for p in glob.glob(os.path.join(folder, "*.pth")) if "-last" not in p]
    assert main([best, "--groups=4"]) == 0
    records = [
        json.loads(open(p).read())
        for p in glob.glob(str(tmp_path / "results/runs/tiny/*.json"))
    ]
    (record,) = [r for r in records if r["kind"] == "evaluate"]
    assert record["test"] == dict(result["test_result"])
    # the command that made the record, not RecBole's emptied command line
    assert record["command"].endswith(
        f"-m recbole_ssl.groups {shlex.quote(best)} --groups=4"
    )
    groups = record["groups"]["groups"]
    sizes = [g["users"] for g in groups]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 289
    assert all(
        a["max_length"] <= b["min_length"]
        for a, b in zip(groups[:-1], groups[1:], strict=True)
    )
    # the groups' metrics, weighted by size, are the overall ones
    weighted = sum(g["metrics"]["ndcg@20"] * g["users"] for g in groups) / sum(sizes)
    assert weighted == pytest.approx(result["test_result"]["ndcg@20"], abs=5e-5)
    assert "length" in capsys.readouterr().out
    assert main([str(tmp_path / "none.pth")]) == 2


def test_a_training_run_records_the_groups_of_its_tested_model(tiny_config, tmp_path):
    """The same groups as ``python -m recbole_ssl.groups`` on its best checkpoint,
    without keeping the checkpoint; ``eval_groups: 0`` records none."""
    run_recbole_ssl("SASRec", "tiny", config_dict=dict(tiny_config, epochs=2))
    folder = tiny_config["checkpoint_dir"]
    (best,) = [p for p in glob.glob(os.path.join(folder, "*.pth")) if "-last" not in p]
    assert main([best]) == 0
    records = [
        json.loads(open(p).read())
        for p in glob.glob(str(tmp_path / "results/runs/tiny/*.json"))
    ]
    (train,) = [r for r in records if r["kind"] == "train"]
    (evaluation,) = [r for r in records if r["kind"] == "evaluate"]
    assert len(train["groups"]["groups"]) == 5
    assert train["groups"] == evaluation["groups"]

    off = tmp_path / "off"
    run_recbole_ssl(
        "SASRec",
        "tiny",
        config_dict=dict(tiny_config, eval_groups=0, record_dir=str(off)),
    )
    (path,) = glob.glob(str(off / "tiny" / "*.json"))
    assert "groups" not in json.loads(open(path).read())
