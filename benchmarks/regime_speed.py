"""Seconds per training epoch of SASRec: RecBole as is, and the plugin's two regimes.

    python benchmarks/regime_speed.py [--dataset amazon-beauty] [--epochs 1]

Rows, all SASRec with CE loss, batch 256, full-sort validation:

- ``recbole``: RecBole's own SASRec, data pipeline and ``Trainer`` (prefix rows; RecBole
  leaves autograd anomaly detection on, see ``recbole_ssl/trainer/trainer.py``);
- ``prefix``: the plugin's SASRec and trainer on the same rows;
- ``sequence``: the plugin's SASRec and trainer, one row per user.

Prints training rows, seconds per epoch (mean of --epochs timed epochs) and one
validation pass per row, then the ratios. Compare ratios from one run: this machine's
absolute times vary with its load.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import recbole.data  # noqa: E402
from bench_timing import (
    machine_line,
    memory_columns,
    memory_header,
    time_epochs,
)  # noqa: E402
from recbole.model.sequential_recommender import SASRec as RecBoleSASRec  # noqa: E402
from recbole.trainer import Trainer as RecBoleTrainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402
from recbole_ssl.model import SASRec  # noqa: E402
from recbole_ssl.trainer import Trainer  # noqa: E402

SETUPS = {
    "recbole": (RecBoleSASRec, RecBoleTrainer, recbole.data, "prefix"),
    "prefix": (SASRec, Trainer, utils, "prefix"),
    "sequence": (SASRec, Trainer, utils, "sequence"),
}


def measure(setup, dataset_name, epochs, extra):
    model_class, trainer_class, data, train_mode = SETUPS[setup]
    config = Config(
        model_class,
        dataset_name,
        config_dict=dict(
            train_mode=train_mode, show_progress=False, state="WARNING", **extra
        ),
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data.data_preparation(
        config, data.create_dataset(config)
    )
    model = model_class(config, train_data._dataset).to(config["device"])
    trainer = trainer_class(config, model)
    return len(train_data._dataset), time_epochs(
        trainer, train_data, valid_data, epochs
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per row")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--setups", default="recbole,prefix,sequence")
    args = parser.parse_args()
    extra = {"data_path": args.data_path} if args.data_path else {}

    print(f"# {args.dataset}, SASRec (CE, batch 256), {machine_line()}")
    print(
        f"{'setup':<10}{'train rows':>12}{'s/epoch':>10}{'eval s':>9}{memory_header()}"
    )
    seconds = {}
    for setup in args.setups.split(","):
        rows, timing = measure(setup, args.dataset, args.epochs, extra)
        seconds[setup] = timing.epoch_s
        print(
            f"{setup:<10}{rows:>12}{timing.epoch_s:>10.1f}{timing.eval_s:>9.1f}"
            + memory_columns(timing),
            flush=True,
        )
    for slow, fast in (("recbole", "sequence"), ("prefix", "sequence")):
        if slow in seconds and fast in seconds:
            print(
                f"{slow} / {fast} time per epoch: {seconds[slow] / seconds[fast]:.2f}x"
            )
    if "recbole" in seconds and "prefix" in seconds:
        print(
            f"recbole / prefix time per epoch: {seconds['recbole'] / seconds['prefix']:.2f}x"
        )


if __name__ == "__main__":
    main()
