"""S3-Rec pretraining speed: the plugin's S3Rec next to RecBole core's, in one run.

    python benchmarks/s3rec_speed.py [--dataset amazon-beauty] [--batches 20]

Pretraining: seconds per batch of 256 rows (mean of --batches timed batches after one
warm-up batch: forward, the four losses, backward, Adam step) and per epoch (per
batch x batches per epoch). RecBole core's S3Rec builds its pretraining samples per
batch in Python loops and pretrains on RecBole's rows (one per training target); the
plugin's builds them on tensors, on the rows of its ``train_mode``: ``sequence`` (its
default, one row per user) and ``prefix`` (RecBole's rows, the same work per epoch as
core). Core runs with anomaly detection off, as the plugin's trainers train (RecBole's
own trainer leaves it on, which is slower still; see results/amazon-beauty.md).

Finetuning: seconds per epoch of the plugin's S3Rec (finetune stage) next to its
SASRec, one full epoch each. Compare ratios from one run: this machine's absolute
times vary with its load.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from bench_timing import (
    machine_line,
    memory_columns,
    memory_header,
    time_epochs,
)  # noqa: E402
from recbole.model.sequential_recommender import S3Rec as CoreS3Rec  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402


def prepare(model, dataset, extra):
    config = Config(
        model, dataset, config_dict=dict(show_progress=False, state="WARNING", **extra)
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = utils.data_preparation(
        config, utils.create_dataset(config)
    )
    built = config.model_class(config, train_data._dataset).to(config["device"])
    return config, built, train_data, valid_data


def seconds_per_batch(model, train_data, batches):
    """Mean seconds of a training step over ``batches`` batches (one warm-up first)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    with torch.autograd.set_detect_anomaly(False):
        for idx, interaction in enumerate(train_data):
            if idx > batches:
                break
            start = time.perf_counter()
            losses = model.calculate_loss(interaction)
            loss = sum(losses) if isinstance(losses, tuple) else losses
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if idx > 0:
                times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--data_path", default=None)
    args = parser.parse_args()
    paths = {"data_path": args.data_path} if args.data_path else {}
    print(f"# {args.dataset}, S3Rec pretraining (batch 256), {machine_line()}")
    rows = []
    core_extra = dict(paths, train_stage="pretrain", item_attribute="attributes")
    _, core, core_data, _ = prepare(CoreS3Rec, args.dataset, core_extra)
    rows.append(("RecBole core", core, core_data))
    for mode in ("sequence", "prefix"):
        _, model, data, _ = prepare("S3Rec", args.dataset, dict(paths, train_mode=mode))
        model.set_stage("pretrain")
        rows.append((f"plugin {mode}", model, data))

    print(f"{'pretraining':<16}{'rows':>9}{'s/batch':>10}{'s/epoch':>10}")
    per_epoch = {}
    for name, model, data in rows:
        per_batch = seconds_per_batch(model, data, args.batches)
        per_epoch[name] = per_batch * len(data)
        n_rows = len(data.dataset)
        print(f"{name:<16}{n_rows:>9}{per_batch:>10.3f}{per_epoch[name]:>10.1f}")
    core_s = per_epoch["RecBole core"]
    for name in ("plugin sequence", "plugin prefix"):
        print(f"RecBole core / {name} per epoch: {core_s / per_epoch[name]:.1f}x")

    print(f"\n{'finetuning':<16}{'s/epoch':>10}{'eval s':>9}{memory_header()}")
    finetune = {}
    for name in ("SASRec", "S3Rec"):
        config, model, train_data, valid_data = prepare(name, args.dataset, paths)
        trainer = utils.get_trainer(config["MODEL_TYPE"], name)(config, model)
        if name == "S3Rec":
            trainer.start_finetuning()
        finetune[name] = time_epochs(trainer, train_data, valid_data, 1)
        timing = finetune[name]
        print(
            f"{name:<16}{timing.epoch_s:>10.1f}{timing.eval_s:>9.1f}"
            + memory_columns(timing)
        )
    ratio = finetune["S3Rec"].epoch_s / finetune["SASRec"].epoch_s
    print(f"S3Rec finetune / SASRec per epoch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
