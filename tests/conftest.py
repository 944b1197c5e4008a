"""Shared fixtures: every test runs in its own temporary folder, from any cwd."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
DATA_DIR = TESTS_DIR / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """cwd = a temporary folder (RecBole writes ./log_tensorboard there), and a clean
    sys.argv (RecBole's Config reads --key=value from it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    return tmp_path


@pytest.fixture
def tiny_config(tmp_path):
    """config_dict for one quick epoch on the tiny dataset, all outputs in tmp_path."""
    return {
        "data_path": str(DATA_DIR),
        "epochs": 1,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(tmp_path / "saved"),
        "log_dir": str(tmp_path / "log"),
        "eval_batch_size": 256,
        "train_batch_size": 64,
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run_script(script, *args, cwd):
    """Run one of the repository's scripts (path relative to the repo) as a user would."""
    return subprocess.run(
        [sys.executable, str(REPO_DIR / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rank_entry(rank, port, target, results):
    import torch

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        results[rank] = target(rank)
    finally:
        torch.distributed.destroy_process_group()


def on_two_ranks(target):
    """Run ``target(rank)`` (a module-level function) in two gloo processes; return
    ``{rank: what it returned}``."""
    import torch

    results = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(
        _rank_entry, args=(free_port(), target, results), nprocs=2, join=True
    )
    return dict(results)


def logged_test_result(stderr):
    """``{metric: value}`` from the last "test result" line of a run's log."""
    import re

    line = [row for row in stderr.splitlines() if "test result" in row][-1]
    pairs = re.findall(r"'((?:hit|ndcg)@\d+)'[,:] ([0-9.e-]+)", line)
    return {metric: float(value) for metric, value in pairs}
