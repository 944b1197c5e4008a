"""How SASRec's cost grows with the catalogue: seconds per epoch, full-sort evaluation
seconds and peak memory on synthetic power-law datasets of growing item counts, under
the all-item CE and the sampled softmax (SSM).

    python benchmarks/catalogue_scale.py [--sizes 10000,100000,1000000] [--users 20000]
        [--interactions 200000] [--losses CE,SSM] [--negatives 1000] [--data_dir DIR]

Each dataset is written by ``python -m recbole_ssl.data.synthetic`` (seeded; kept in
``--data_dir``, default a temporary folder, and reused when already there). Each
(size, loss) runs in a fresh process, so its peak resident memory is its own and a
setting that runs out of memory (its address space is capped, ``--memory_gib``, 90% of
what is available by default) or time (``--timeout``) is reported (``failed``) instead
of ending the table.
SASRec's YAML defaults otherwise (``sequence`` rows, batch 256, 1 timed epoch, one
validation pass with ``eval_max_scores`` bounding the evaluation's memory).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))


def measure_one(args):
    """One (size, loss) in this process: prints one JSON line."""
    from contrastive_speed import measure

    extra = {"data_path": args.data_dir, "loss_type": args.loss}
    if args.loss == "SSM":
        extra["train_neg_num"] = args.negatives
    timing, _ = measure("SASRec", args.name, args.epochs, extra)
    print(json.dumps(timing._asdict()), flush=True)


def available_gib():
    """What the system says is available now (``MemAvailable``), in GiB."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return None


def limit_memory(gib):
    """For the child: address space capped at ``gib``, so a setting too large for the
    machine fails with torch's allocation error instead of waking the OOM killer
    (which may pick another process)."""
    cap = int(gib * 2**30)
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def ensure_dataset(data_dir, name, users, items, interactions):
    from recbole_ssl.data.synthetic import generate

    if not os.path.exists(os.path.join(data_dir, name, f"{name}.inter")):
        generate(data_dir, name, users, items, interactions)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--interactions", type=int, default=200000)
    parser.add_argument("--losses", default="CE,SSM")
    parser.add_argument("--negatives", type=int, default=1000, help="SSM's per batch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds a setting may take"
    )
    parser.add_argument(
        "--memory_gib",
        type=float,
        default=None,
        help="address space of each setting (default 90%% of what is available)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--loss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return measure_one(args)

    from bench_timing import machine_line
    from contrastive_speed import figure

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="catalogue-")
    memory_gib = args.memory_gib or 0.9 * (available_gib() or 16.0)
    print(
        f"# SASRec on synthetic power-law data: {args.users} users, "
        f"{args.interactions} interactions; SSM with {args.negatives} negatives; "
        f"each setting capped at {memory_gib:.1f} GiB; {machine_line()}"
    )
    print(f"{'items':>9}{'loss':>6}{'s/epoch':>10}{'eval s':>9}{'peak MiB':>10}")
    for size in map(int, args.sizes.split(",")):
        name = f"synthetic-{size}"
        ensure_dataset(data_dir, name, args.users, size, args.interactions)
        for loss in args.losses.split(","):
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--one",
                f"--name={name}",
                f"--loss={loss}",
                f"--data_dir={data_dir}",
                f"--negatives={args.negatives}",
                f"--epochs={args.epochs}",
            ]
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    preexec_fn=limit_memory(memory_gib),
                    timeout=args.timeout,
                )
            except subprocess.TimeoutExpired:
                print(f"{size:>9}{loss:>6}  failed: over {args.timeout:.0f} s")
                continue
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                why = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{size:>9}{loss:>6}  failed (exit {done.returncode}): {why}")
                continue
            timing = json.loads(lines[-1])
            print(
                f"{size:>9}{loss:>6}{figure(timing['epoch_s']):>10}"
                f"{figure(timing['eval_s']):>9}{timing['peak_mib']:>10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
