"""Does MMInfoRec's MINCE learn or collapse in its first batches, per similarity setting?

    python benchmarks/mminforec_collapse.py [--dataset amazon-beauty] [--data_path DIR] [--steps 60]
        [--settings '{"mince_similarity": "dot", "mince_temperature": 3.333}' ...]

For each setting a freshly seeded MMInfoRec (seed 2020, the YAML defaults with the
all-item CE off, ``ce_weight: 0``, so MINCE alone trains as in the paper, plus the
setting, which may turn the CE back on) trains with Adam on the same first ``steps`` training batches. The script prints
the mean MINCE loss of the first and last fifth of the steps next to the uniform level
``ln P`` (P scored positions in a batch: every candidate equally likely), and the mean
pairwise cosine of the latents ``z`` of items 1..2000 afterwards (near 1: every item
points the same way, a collapse). It backs the default similarity (see MMInfoRec's
docstring).
"""

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_probe import (  # noqa: E402
    QUIET,
    add_probe_arguments,
    first_and_last_fifth,
    first_batches,
    train_from_seed,
)

SETTINGS = (
    {"mince_similarity": "dot", "mince_temperature": 3.333},
    {"mince_similarity": "dot", "mince_temperature": 10.0},
    {"mince_similarity": "cos", "mince_temperature": 0.3},
    {"mince_similarity": "cos", "mince_temperature": 0.1},
)


def probe(args, dataset, batches, setting):
    model, losses, seconds = train_from_seed(
        "MMInfoRec", args, dict(QUIET, ce_weight=0.0, **setting), dataset, batches
    )
    positions = (model.next_item_targets(batches[-1]) > 0).sum().item()
    model.eval()
    with torch.no_grad():
        items = torch.arange(1, min(2001, model.n_items))
        z = F.normalize(model.encode_items(items), dim=-1)
    first, last = first_and_last_fifth([parts[0] for parts in losses])  # MINCE
    return first, last, math.log(positions), (z @ z.t()).mean().item(), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_probe_arguments(parser, steps=60, settings=SETTINGS)
    args = parser.parse_args()
    dataset, batches = first_batches("MMInfoRec", args, QUIET)
    print(
        f"# {args.dataset}, MMInfoRec, {len(batches)} training batches from "
        f"initialisation, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("setting                    first loss  last loss  uniform  z cos   seconds")
    for setting in args.settings:
        first, last, uniform, cos, seconds = probe(args, dataset, batches, setting)
        name = f"{setting.get('mince_similarity', '?')} {setting.get('mince_temperature', '?')}"
        extra = {
            k: v
            for k, v in setting.items()
            if k not in ("mince_similarity", "mince_temperature")
        }
        if extra:
            name += " " + json.dumps(extra)
        print(
            f"{name:<26} {first:10.3f} {last:10.3f} {uniform:8.3f} "
            f"{cos:6.3f} {seconds:9.1f}"
        )


if __name__ == "__main__":
    main()
