"""RecBole's distributed mode on the CPU: two processes with gloo."""

import math

import pytest
from conftest import DATA_DIR, free_port, logged_test_result, run_script
from distributed_check import compare
from distributed_equivalence import CASES

from recbole_ssl.quick_start import run
from recbole_ssl.record import load


@pytest.mark.slow
def test_two_processes_on_cpu(tiny_config, tmp_path):
    result = run(
        "SASRec",
        "tiny",
        config_dict=dict(tiny_config, epochs=2),
        nproc=2,
        port=free_port(),
    )
    assert result is not None
    values = list(result["test_result"].values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    # rank 0 alone writes the run's record, with the result rank 0 returned
    (path,) = (tmp_path / "results" / "runs" / "tiny").glob("*.json")
    record = load(path)
    assert record["status"] == "finished" and record["setting"]["nproc"] == 2
    assert record["test"] == result["test_result"] and len(record["epochs"]) == 2


@pytest.mark.slow
def test_cli_nproc_2(tmp_path):
    out = run_script(
        "run_recbole_ssl.py",
        "--model=SASRec",
        "--dataset=tiny",
        "--nproc=2",
        f"--port={free_port()}",
        f"--data_path={DATA_DIR}",
        "--epochs=1",
        "--show_progress=False",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # rank 0 logs the test result; the metrics of both ranks' shards are reduced
    result = logged_test_result(out.stderr)
    values = [value for metric, value in result.items() if metric.startswith("ndcg")]
    assert len(values) == 3 and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize(
    "model, stage, settings",
    CASES,
    ids=[f"{m}-{stage or ''}-{s}" for m, stage, s in CASES],
)
def test_two_processes_optimise_the_one_process_objective(
    model, stage, settings, tiny_config
):
    """On one global batch (of odd size: the shards differ), the loss and every
    parameter's gradient after DDP's averaging equal one process's (1e-5, relative)."""
    config = dict(tiny_config, train_batch_size=63, **settings)
    loss_diff, grad_diff, worst = compare(model, "tiny", config, free_port(), stage)
    assert loss_diff < 1e-5
    assert grad_diff < 1e-5, worst


@pytest.mark.slow
def test_two_machines_over_loopback(tmp_path):
    """One job over "two machines": two launches of the command line, one process
    each (``--nproc=1 --world_size=2``), ranks 0 and 1 by ``--group_offset``, meeting
    at ``--ip``/``--port``, as the README's multi-machine commands."""
    import subprocess
    import sys

    from conftest import REPO_DIR

    port = free_port()
    launches = []
    for offset in (0, 1):
        folder = tmp_path / f"machine{offset}"
        folder.mkdir()
        launches.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO_DIR / "run_recbole_ssl.py"),
                    "--model=CL4SRec",
                    "--dataset=tiny",
                    f"--data_path={DATA_DIR}",
                    "--nproc=1",
                    "--world_size=2",
                    f"--group_offset={offset}",
                    "--ip=127.0.0.1",
                    f"--port={port}",
                    "--epochs=1",
                    "--show_progress=False",
                ],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [launch.communicate(timeout=600) for launch in launches]
    for launch, (_, err) in zip(launches, outputs, strict=True):
        assert launch.returncode == 0, err[-3000:]
    result = logged_test_result(outputs[0][1])  # rank 0 logs the test result
    values = [v for metric, v in result.items() if metric.startswith("ndcg")]
    assert len(values) == 3 and all(math.isfinite(v) for v in values)
    # rank 0 alone writes the run record, in its own working folder
    assert list((tmp_path / "machine0" / "results" / "runs" / "tiny").glob("*.json"))
    assert not (tmp_path / "machine1" / "results").exists()
