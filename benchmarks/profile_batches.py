"""Where a model's training and evaluation time goes: torch.profiler over a few batches.

    python benchmarks/profile_batches.py --model DSSRec [--dataset amazon-beauty]
    python benchmarks/profile_batches.py --model MMInfoRec --batches 20 --settings '{"ce_weight": 0}'

Trains ``--batches`` batches (forward, backward and Adam's step, after one untimed
warm-up batch) and scores ``--batches`` validation batches (full sort), each under
torch.profiler, and prints the operators by their own CPU time: the top ``--top``, their
share of the total, and the total per batch. Compare it with SASRec's
(``--model SASRec``) to see what a model adds; run it before optimising, and write the
finding down beside the speed figures.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from bench_probe import build  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from recbole_ssl import utils  # noqa: E402


def profile_table(run, top):
    """``run()`` under the profiler: ``(rows, total seconds)``, rows
    ``(operator, self seconds, calls)`` by self CPU time."""
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run()
    events = prof.key_averages()
    rows = sorted(
        ((e.key, e.self_cpu_time_total / 1e6, e.count) for e in events),
        key=lambda row: -row[1],
    )
    total = sum(row[1] for row in rows)
    return rows[:top], total


def show(title, rows, total, batches):
    print(f"\n{title}: {total / batches:.3f} s per batch (operators' own CPU time)")
    print(f"{'operator':<44}{'s':>9}{'share':>8}{'calls':>8}")
    for name, seconds, calls in rows:
        print(f"{name[:43]:<44}{seconds:>9.3f}{seconds / total:>8.1%}{calls:>8}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--settings", type=json.loads, default={})
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    settings = dict(args.settings, state="ERROR", show_progress=False)
    if args.data_path:
        settings["data_path"] = args.data_path
    config, model, train_data, valid_data, _ = build(args.model, settings, args.dataset)
    model = model.to(config["device"])
    if getattr(model, "needs_item_correlation", False):  # CoSeRec, as its trainer does
        trainer_class = utils.get_trainer(config["MODEL_TYPE"], config["model"])
        trainer_class(config, model).build_item_correlation(train_data._dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])

    def forever(loader):
        while True:
            yield from loader

    batches = forever(train_data)

    def step():
        batch = next(batches).to(config["device"])
        optimizer.zero_grad()
        losses = model.calculate_loss(batch)
        loss = sum(losses) if isinstance(losses, tuple) else losses
        loss.backward()
        optimizer.step()

    print(
        f"# {args.dataset}, {args.model} {args.settings or '(defaults)'}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    # as the plugin's trainers: off unless detect_anomaly (RecBole's sine.py, imported
    # with its models, switches it on for the whole process)
    torch.autograd.set_detect_anomaly(bool(config["detect_anomaly"]))
    model.train()
    step()  # warm-up
    rows, total = profile_table(lambda: [step() for _ in range(args.batches)], args.top)
    show(f"training, {args.batches} batches", rows, total, args.batches)

    model.eval()
    evaluation = forever(valid_data)

    def score():
        with torch.no_grad():
            for _ in range(args.batches):
                interaction = next(evaluation)[0].to(config["device"])
                model.full_sort_predict(interaction)

    rows, total = profile_table(score, args.top)
    show(f"full-sort scoring, {args.batches} batches", rows, total, args.batches)


if __name__ == "__main__":
    main()
