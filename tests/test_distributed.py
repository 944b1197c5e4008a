"""RecBole's distributed mode on the CPU: two processes with gloo."""

import math

import pytest
from conftest import DATA_DIR, free_port, logged_test_result, run_script
from distributed_check import compare, deal
from distributed_equivalence import CASES

from recbole_ssl.quick_start import evaluate_checkpoint, run
from recbole_ssl.record import load


def test_ranks_deal_the_batches_of_one_process(tiny_config):
    """Each rank walks through one process's batches, in one process's order epoch
    after epoch, and takes rows ``rank, rank + 2, ...`` of each: no row twice, none
    left out, as many batches on each rank. RecBole's ``DistributedSampler`` pads the
    rows with copies of the first ones and draws an order of its own."""
    # 289 users, one training row each: batches of 9 and 8 leave one row at the end,
    # so rank 1's last batch is empty, and batches of 9 split 5 + 4
    config = dict(tiny_config, train_batch_size=9, eval_batch_size=8)
    one, ranks = deal("tiny", config, free_port(), epochs=2)
    for part, batches in enumerate(one):  # training (2 epochs), validation, test
        for rank in (0, 1):
            dealt = ranks[rank][part]
            assert len(dealt) == len(batches)
            for rows, own in zip(batches, dealt, strict=True):
                assert own == rows[rank::2]
        assert len(batches[-1]) == 1 and len(ranks[1][part][-1]) == 0
    users = [row[0] for batch in one[0] for row in batch]
    assert len(users) == 2 * 289 and len(set(users[:289])) == 289
    assert users[:289] != users[289:]  # a new order each epoch


@pytest.mark.slow
def test_two_processes_on_cpu(tiny_config, tmp_path):
    """A two-process run finishes with the metrics one process computes from its best
    checkpoint, to the last digit: every user ranked once, all users' metrics at once
    (289 users: the ranks' shares differ, and rank 1's last batches are empty)."""
    config = dict(tiny_config, epochs=2, train_batch_size=9, eval_batch_size=8)
    result = run("SASRec", "tiny", config_dict=config, nproc=2, port=free_port())
    assert result is not None
    values = list(result["test_result"].values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    # rank 0 alone writes the run's record, with the result rank 0 returned
    (path,) = (tmp_path / "results" / "runs" / "tiny").glob("*.json")
    record = load(path)
    assert record["status"] == "finished" and record["setting"]["nproc"] == 2
    assert record["test"] == result["test_result"] and len(record["epochs"]) == 2
    # one process, the same checkpoint (a distributed run's: evaluating it must not
    # wait for ranks)
    alone = evaluate_checkpoint(record["checkpoint"])
    assert alone["test_result"] == result["test_result"]
    assert alone["valid_result"] == record["best_valid"]


@pytest.mark.slow
def test_fewer_users_than_ranks(tiny_config, tmp_path):
    """One user, two ranks: rank 1 has no row to train on or rank, and the run still
    finishes, with one process's metrics."""
    folder = tmp_path / "data" / "one"
    folder.mkdir(parents=True)
    rows = [f"1\t{item}\t{item}" for item in range(1, 26)]  # 25 items: top-20 fits
    (folder / "one.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n"
    )
    config = dict(tiny_config, data_path=str(tmp_path / "data"))
    result = run("CL4SRec", "one", config_dict=config, nproc=2, port=free_port())
    (path,) = (tmp_path / "results" / "runs" / "one").glob("*.json")
    record = load(path)
    assert record["status"] == "finished"
    alone = evaluate_checkpoint(record["checkpoint"])
    assert alone["test_result"] == result["test_result"]


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


# the models whose code once failed on a rank's empty share (a reshape of zero rows)
EMPTY_SHARE_CASES = [
    ("DSSRec", None, {}),
    ("MMInfoRec", None, {"pred_step": 2}),
    ("S3Rec", "pretrain", {}),
]


@pytest.mark.parametrize(
    "model, stage, settings",
    EMPTY_SHARE_CASES,
    ids=[f"{m}-{stage or ''}" for m, stage, _ in EMPTY_SHARE_CASES],
)
def test_a_rank_with_no_rows(model, stage, settings, tiny_config):
    """A global batch of one row: rank 1's share is empty, and the two ranks still
    compute one process's loss and gradients."""
    config = dict(tiny_config, train_batch_size=1, **settings)
    loss_diff, grad_diff, worst = compare(model, "tiny", config, free_port(), stage)
    assert loss_diff < 1e-5
    assert grad_diff < 1e-5, worst


@pytest.mark.slow
def test_two_machines_over_loopback(tmp_path):
    """One job over "two machines": two launches of the command line, one process
    each (``--nproc=1 --world_size=2``), ranks 0 and 1 by ``--group_offset``, meeting
    at ``--ip``/``--port``, as docs/distributed.md's multi-machine commands."""
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
