"""Seconds per training epoch of SASRec in the two regimes, in one run.

    python benchmarks/regime_speed.py [--dataset amazon-beauty] [--epochs 1]

Prints, per regime, the training rows, seconds per epoch (mean of --epochs timed
epochs) and one full-sort validation pass, then the prefix / sequence ratio. Compare
ratios from one run: this machine's absolute times vary with its load.
"""

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl.config import Config  # noqa: E402
from recbole_ssl.model import SASRec  # noqa: E402
from recbole_ssl.trainer import Trainer  # noqa: E402
from recbole_ssl.utils import create_dataset, data_preparation  # noqa: E402


def measure(dataset_name, train_mode, epochs, extra):
    config = Config(
        "SASRec",
        dataset_name,
        config_dict=dict(
            train_mode=train_mode, show_progress=False, state="WARNING", **extra
        ),
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    trainer.evaluate(valid_data, load_best_model=False)
    eval_time = time.perf_counter() - start
    return len(train_data._dataset), sum(times) / len(times), eval_time


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per regime")
    parser.add_argument("--data_path", default=None)
    args = parser.parse_args()
    extra = {"data_path": args.data_path} if args.data_path else {}

    print(
        f"# {args.dataset}, SASRec (CE, batch 256), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'regime':<10}{'train rows':>12}{'s/epoch':>10}{'eval s':>9}")
    results = {}
    for mode in ("prefix", "sequence"):
        rows, epoch_s, eval_s = measure(args.dataset, mode, args.epochs, extra)
        results[mode] = epoch_s
        print(f"{mode:<10}{rows:>12}{epoch_s:>10.1f}{eval_s:>9.1f}")
    ratio = results["prefix"] / results["sequence"]
    print(f"prefix / sequence time per epoch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
