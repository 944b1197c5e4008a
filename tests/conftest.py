"""Shared fixtures: every test runs in its own temporary folder, from any cwd."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per pytest-xdist worker (and per run it starts): two workers on
    # two cores, not four threads fighting over them
    os.environ["OMP_NUM_THREADS"] = "1"

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
DATA_DIR = TESTS_DIR / "data"
sys.path.insert(0, str(REPO_DIR / "benchmarks"))  # helpers shared with the benchmarks

from bench_probe import build  # noqa: E402, F401 (re-exported to the tests)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """cwd = a temporary folder (RecBole writes ./log_tensorboard there), and a clean
    sys.argv (RecBole's Config reads --key=value from it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    return tmp_path


@pytest.fixture(autouse=True)
def cpu_reading_without_a_second_of_sleep(monkeypatch):
    """RecBole's environment table, logged at the end of every run, reads the CPU
    use with ``psutil.cpu_percent(interval=1)``: a second asleep per run. Runs in
    this process read the use since the last reading instead (``interval=None``)."""
    import psutil

    reading = psutil.cpu_percent
    monkeypatch.setattr(
        psutil, "cpu_percent", lambda interval=None, percpu=False: reading(None, percpu)
    )


@pytest.fixture
def two_threads():
    """Two torch threads (pytest-xdist gives each worker one, above): a backward pass
    that sums in no fixed order differs between runs only on more than one, as the
    plain row lookups did before ``take_rows`` (tests/test_determinism.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def ready_for_one_batch(model_name, model, train_data):
    """What the model's trainer gives it before its first batch, so that one batch's
    loss holds every term: S3-Rec's finetuning stage, CoSeRec's item correlation, and
    ICLRec's intents as after a first E-step."""
    import torch

    from recbole_ssl.data.correlation import ItemCorrelation

    if model_name == "S3Rec":
        model.set_stage("finetune")
    if getattr(model, "needs_item_correlation", False):
        model.set_item_correlation(ItemCorrelation.from_dataset(train_data._dataset))
    if model_name == "ICLRec":
        model.intents.centroids = torch.randn(8, model.hidden_size)
        model.intents.user_intents.zero_()


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


def tiny_args(model, *options):
    """The command line of ``model`` on the tiny dataset, then ``options``."""
    return [f"--model={model}", "--dataset=tiny", f"--data_path={DATA_DIR}", *options]


def run_tiny(tmp_path, model, *options):
    """``run_recbole_ssl.py --model=<model>`` on the tiny dataset, as a user runs it."""
    return run_script("run_recbole_ssl.py", *tiny_args(model, *options), cwd=tmp_path)


def main_here(monkeypatch, capsys, *args):
    """``run_recbole_ssl.py <args>`` in this process, from the test's folder, as a
    ``subprocess.CompletedProcess``: what ``run_script`` gives, without starting an
    interpreter (seconds of torch and RecBole imports each). For runs that end at a
    user error, or settings read from the command line; whole runs as a user starts
    them, and the process boundary itself, go through ``run_script``."""
    from recbole_ssl.cli import main
    from recbole_ssl.quick_start import close_log_handlers

    monkeypatch.setattr(sys, "argv", ["run_recbole_ssl.py", *args])
    try:
        code = main(list(args))
    finally:  # a run's log handlers write to capsys's stream, closed after the test
        close_log_handlers()
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.fixture
def tiny_here(monkeypatch, capsys):
    """``run_tiny`` in this process (``main_here``): ``tiny_here(model, *options)``."""

    def run(model, *options):
        return main_here(monkeypatch, capsys, *tiny_args(model, *options))

    return run


def start_tiny_sasrec(cwd, *options, **popen):
    """``run_recbole_ssl.py --model=SASRec`` on the tiny dataset, started in the
    background as a user would (``options`` after the model and data; ``popen``: the
    output's destinations). Returns the ``subprocess.Popen``."""
    command = [
        sys.executable,
        str(REPO_DIR / "run_recbole_ssl.py"),
        "--model=SASRec",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        *options,
        "--show_progress=False",
    ]
    return subprocess.Popen(command, cwd=cwd, **popen)


def assert_finite_run(out):
    """The run ended well and logged six finite test metrics: for smoke tests of the
    command line only (named ``test_smoke_...``); behaviour is pinned elsewhere."""
    import math

    assert out.returncode == 0, out.stderr[-3000:]
    values = list(logged_test_result(out.stderr).values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)


def assert_one_clear_line(out, message):
    """The run failed with the CLI's one-line error holding ``message``."""
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr


def run_two_processes(model, config_dict):
    """``model`` on the tiny dataset in RecBole's distributed mode (2 gloo processes);
    checks and returns rank 0's result."""
    import math

    from recbole_ssl.quick_start import run

    result = run(model, "tiny", config_dict=config_dict, nproc=2, port=free_port())
    values = list(result["test_result"].values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    return result


def loss_and_drawn_negatives(model, batch):
    """``model``'s loss on ``batch`` and the one draw its negative sampler made for it
    (BCE/BPR: per position; SSM: per batch)."""
    drawn = []
    sample = model.negatives.sample

    def recorded(*args):
        drawn.append(sample(*args))
        return drawn[-1]

    model.negatives.sample = recorded
    loss = model.calculate_loss(batch)
    (negatives,) = drawn
    return loss, negatives
