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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from bench_probe import (  # noqa: E402
    QUIET,
    add_probe_arguments,
    first_and_last_fifth,
    first_batches,
    train_from_seed,
)

SETTINGS = (
    {"model": "SASRec"},
    {"model": "SASRec", "n_heads": 1},
    {"model": "DSSRec"},
    {"model": "DSSRec", "s2s_lambda": 0},
    {"model": "DSSRec", "s2s_lambda": 0, "n_intents": 1},
)
SEQUENCE_ROWS = dict(QUIET, train_mode="sequence")


def probe(args, dataset, batches, setting):
    overrides = {k: v for k, v in setting.items() if k != "model"}
    model, losses, seconds = train_from_seed(
        setting["model"], args, dict(SEQUENCE_ROWS, **overrides), dataset, batches
    )
    first, last = first_and_last_fifth([parts[0] for parts in losses])
    _, s2s = first_and_last_fifth([sum(parts[1:]) for parts in losses])
    return first, last, math.log(model.n_items - 1), s2s, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_probe_arguments(parser, steps=88, settings=SETTINGS)
    args = parser.parse_args()
    for setting in args.settings:
        if setting.get("model") not in ("SASRec", "DSSRec"):
            parser.error(f'each setting needs "model": SASRec or DSSRec, got {setting}')
    dataset, batches = first_batches("DSSRec", args, SEQUENCE_ROWS)
    print(
        f"# {args.dataset}, {len(batches)} training batches from initialisation, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        "setting                                            next-item first  last  uniform"
        "  seq2seq last  seconds"
    )
    for setting in args.settings:
        first, last, uniform, s2s, seconds = probe(args, dataset, batches, setting)
        name = json.dumps(setting)
        print(
            f"{name:<52} {first:15.3f} {last:5.3f} {uniform:8.3f} {s2s:13.3f} "
            f"{seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
