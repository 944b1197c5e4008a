"""How large DSSRec's seq2item scores start, and how far its loss sits from uniform.

    python benchmarks/dssrec_init_scale.py [--dataset amazon-beauty] [--steps 1]
        [--settings '{"s2i_scale": false}' ...]

Each setting is a JSON object of overrides on DSSRec's paper preset
(``DSSRec-paper.yaml``; ``{}``: the preset itself). For each, a freshly seeded model
(seed 2020) reads the first training batch: the script prints the number of scored
positions and of seq2item candidates (in-batch: every target under every part; the
uniform loss is the log of that number under ``s2i_loss: in_batch``), the mean norm of
the intention parts and of the targets' item embeddings, the standard deviation and
largest magnitude of the seq2item scores as the loss forms them, and the seq2item loss
itself: on the first batch before any step, and on the last of ``--steps`` batches after
Adam trained on them (``batch`` is the number of steps taken). It backs the DSSRec preset notes in ``results/amazon-beauty.md``.
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import yaml  # noqa: E402
from bench_probe import (  # noqa: E402
    QUIET,
    add_probe_arguments,
    first_batches,
    train_from_seed,
)

from recbole_ssl.cli import resolve_config_file  # noqa: E402


def first_batch_figures(model, batch):
    """The figures of the module docstring on one batch (no gradient)."""
    with torch.no_grad():
        parts = model.intents(
            batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], every_prefix=True
        )
        targets = model.next_item_targets(batch)
        scored = targets > 0
        part = parts[scored]  # [N, K, D]
        target = targets[scored]
        items = model.item_embedding(target)
        scores = torch.einsum("nkd,md->nkm", part, items) * model.s2i_scale
        loss = model.seq2item_loss(parts, batch)
    return {
        "positions": part.size(0),
        "candidates": part.size(0) * part.size(1),
        "part_norm": part.norm(dim=-1).mean().item(),
        "item_norm": items.norm(dim=-1).mean().item(),
        "score_std": scores.std().item(),
        "score_max": scores.abs().max().item(),
        "loss": loss.item(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_probe_arguments(parser, 1, [{}])
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with open(resolve_config_file("DSSRec-paper"), encoding="utf-8") as f:
        preset = yaml.safe_load(f)
    print(f"# {args.dataset}, DSSRec-paper, seed 2020, Adam over {args.steps} batches")
    print(
        f"{'setting':<24}{'batch':>6}{'positions':>10}{'candidates':>11}{'ln':>7}"
        f"{'|part|':>8}{'|item|':>8}{'score std':>10}{'max':>8}{'loss':>8}"
    )
    for overrides in args.settings:
        config_dict = dict(preset, **QUIET, **overrides)
        dataset, batches = first_batches("DSSRec", args, config_dict)
        name = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "preset"
        fresh, _, _ = train_from_seed("DSSRec", args, config_dict, dataset, [])
        trained, _, _ = train_from_seed("DSSRec", args, config_dict, dataset, batches)
        # the first batch before any step; the last batch after the last step
        for label, model, batch in (
            (0, fresh, batches[0]),
            (len(batches), trained, batches[-1]),
        ):
            f = first_batch_figures(model, batch)
            print(
                f"{name[:23]:<24}{label:>6}{f['positions']:>10}{f['candidates']:>11}"
                f"{math.log(f['candidates']):>7.2f}{f['part_norm']:>8.2f}"
                f"{f['item_norm']:>8.3f}{f['score_std']:>10.4f}"
                f"{f['score_max']:>8.3f}{f['loss']:>8.3f}"
            )


if __name__ == "__main__":
    main()
