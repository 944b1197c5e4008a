"""Does a distributed run optimise the one-process objective? Per plugin model, one
global training batch through one process and through two gloo processes.

    python benchmarks/distributed_equivalence.py --dataset tiny --data_path tests/data
    python benchmarks/distributed_equivalence.py --dataset amazon-beauty --speed

Prints per model the relative difference of the loss and the largest relative
gradient difference over its parameters (each parameter's largest difference over its
largest gradient entry; see ``distributed_check.py``), and ends with one line
``max loss diff <x>, max grad diff <y>`` over all models. ``--speed`` adds seconds per
training epoch of SASRec and ICLRec with one process and with two (one thread each),
and their ratio; ``--speed --skip_check`` measures only that.
"""

import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from distributed_check import compare  # noqa: E402

CASES = [
    ("SASRec", None, {}),
    ("SASRec", None, {"loss_type": "SSM", "train_neg_num": 16}),
    ("CL4SRec", None, {}),
    ("CoSeRec", None, {}),
    ("ICLRec", None, {}),
    ("DSSRec", None, {}),
    ("DSSRec", None, {"s2i_loss": "in_batch"}),
    ("MMInfoRec", None, {"pred_step": 2}),
    ("MMInfoRec", None, {"multi_instance": False, "ce_weight": 0.0}),
    ("S3Rec", "pretrain", {}),
    ("S3Rec", "pretrain", {"pretrain_loss_type": "BCE", "pretrain_reduction": "sum"}),
    ("S3Rec", "finetune", {}),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch_seconds(model, dataset, data_path, nproc):
    """Mean training seconds per epoch of a 2-epoch run (one thread per process)."""
    import tempfile

    from recbole_ssl.quick_start import run
    from recbole_ssl.record import load

    with tempfile.TemporaryDirectory() as folder:
        config = dict(
            epochs=2,
            show_progress=False,
            state="ERROR",
            checkpoint_dir=os.path.join(folder, "saved"),
            log_dir=os.path.join(folder, "log"),
            record_dir=os.path.join(folder, "runs"),
            tensorboard_dir=os.path.join(folder, "tb"),
        )
        if data_path:
            config["data_path"] = data_path
        run(model, dataset, config_dict=config, nproc=nproc, port=free_port())
        (name,) = os.listdir(os.path.join(folder, "runs", dataset))
        record = load(os.path.join(folder, "runs", dataset, name))
    seconds = [e["train_seconds"] for e in record["epochs"]]
    return sum(seconds) / len(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiny")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--batch_size", type=int, default=63)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--skip_check", action="store_true")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    if args.speed and args.skip_check:
        speed(args)
        return
    base = dict(train_batch_size=args.batch_size, show_progress=False, state="ERROR")
    if args.data_path:
        base["data_path"] = args.data_path
    print(
        f"# {args.dataset}: one batch of {args.batch_size} rows, 1 process against 2 "
        "gloo processes (dropout off, per-row draws shared)"
    )
    print(f"{'model':<44} {'loss diff':>10} {'grad diff':>10}  worst parameter")
    worst_loss = worst_grad = 0.0
    for model, stage, settings in CASES:
        loss_diff, grad_diff, worst = compare(
            model, args.dataset, dict(base, **settings), free_port(), stage
        )
        name = (
            model
            + (f" ({stage})" if stage else "")
            + (f" {settings}" if settings else "")
        )
        print(f"{name:<44} {loss_diff:10.2e} {grad_diff:10.2e}  {worst}")
        worst_loss, worst_grad = max(worst_loss, loss_diff), max(worst_grad, grad_diff)
    if args.speed:
        speed(args)
    print(f"max loss diff {worst_loss:.2e}, max grad diff {worst_grad:.2e}")


def speed(args):
    for model in ("SASRec", "ICLRec"):
        one = epoch_seconds(model, args.dataset, args.data_path, 1)
        two = epoch_seconds(model, args.dataset, args.data_path, 2)
        print(
            f"{model}: {one:.1f} s per epoch with 1 process, {two:.1f} s with 2 "
            f"(ratio {two / one:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
