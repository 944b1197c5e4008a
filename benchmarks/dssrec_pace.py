"""How fast does DSSRec's next-item loss fall next to SASRec's, and which part slows it?

    python benchmarks/dssrec_pace.py [--dataset amazon-beauty] [--data_path DIR] [--steps 88]
        [--settings '{"model": "DSSRec", "s2s_lambda": 0}' ...]

Every setting names a model (SASRec or DSSRec) and overrides of its YAML defaults. A
freshly seeded model (seed 2020) trains with Adam on the same first ``steps`` training
batches (``train_mode: sequence``; 88 batches are one epoch of Beauty). The script prints
the mean next-item cross-entropy over all items (SASRec's loss, DSSRec's seq2item part) of
the first and last fifth of the steps, next to the uniform level ``ln n_items``, the
seq2seq part where there is one, and the seconds taken. Both losses score every position of
every training sequence, so the figures compare directly. It backs the DSSRec notes in
``results/amazon-beauty.md``.
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402

SETTINGS = (
    {"model": "SASRec"},
    {"model": "SASRec", "n_heads": 1},
    {"model": "DSSRec"},
    {"model": "DSSRec", "s2s_lambda": 0},
    {"model": "DSSRec", "s2s_lambda": 0, "n_intents": 1},
)
QUIET = {"state": "ERROR", "show_progress": False, "train_mode": "sequence"}


def probe(dataset_name, dataset, batches, setting):
    overrides = {k: v for k, v in setting.items() if k != "model"}
    config = Config(
        setting["model"], dataset_name, config_dict=dict(QUIET, **overrides)
    )
    init_seed(config["seed"], True)
    model = config.model_class(config, dataset)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config["learning_rate"],
        weight_decay=config["weight_decay"] or 0.0,
    )
    model.train()
    next_item, other, start = [], [], time.time()
    for batch in batches:
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        parts = tuple(loss) if isinstance(loss, tuple) else (loss,)
        sum(parts).backward()
        optimizer.step()
        next_item.append(parts[0].item())
        other.append(sum(p.item() for p in parts[1:]))
    seconds = time.time() - start
    fifth = max(1, len(batches) // 5)

    def mean(values):
        return sum(values) / len(values)

    return (
        mean(next_item[:fifth]),
        mean(next_item[-fifth:]),
        math.log(model.n_items - 1),
        mean(other[-fifth:]),
        seconds,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--steps", type=int, default=88)
    parser.add_argument("--settings", nargs="*", type=json.loads, default=SETTINGS)
    args = parser.parse_args()
    if args.data_path:
        QUIET["data_path"] = args.data_path
    for setting in args.settings:
        if setting.get("model") not in ("SASRec", "DSSRec"):
            parser.error(f'each setting needs "model": SASRec or DSSRec, got {setting}')

    base = Config("DSSRec", args.dataset, config_dict=QUIET)
    dataset = utils.create_dataset(base)
    train_data, _, _ = utils.data_preparation(base, dataset)
    batches = []
    for batch in train_data:
        batches.append(batch)
        if len(batches) == args.steps:
            break
    print(
        f"# {args.dataset}, {len(batches)} training batches from initialisation, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        "setting                                            next-item first  last  uniform"
        "  seq2seq last  seconds"
    )
    for setting in args.settings:
        first, last, uniform, s2s, seconds = probe(
            args.dataset, train_data._dataset, batches, setting
        )
        name = json.dumps(setting)
        print(
            f"{name:<52} {first:15.3f} {last:5.3f} {uniform:8.3f} {s2s:13.3f} "
            f"{seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
