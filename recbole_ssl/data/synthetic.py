"""Synthetic atomic datasets with a power-law item popularity, to measure how a model's
cost grows with the catalogue.

Each of ``users`` users gets a sequence of at least 3 items (training, validation and
test under leave-one-out), ``interactions`` in all: 3 each, the rest spread uniformly
at random over the users. Items are drawn independently with probability proportional
to ``rank ** -alpha`` (Zipf's law; ``alpha`` 1 by default), the ranks assigned to the
item ids in a random order. The timestamp is the item's position in its user's
sequence. Seeded: the same arguments write the same files.

Output, in ``OUTPUT_DIR/NAME/``: ``NAME.inter`` (``user_id:token item_id:token
timestamp:float``) and ``NAME.item`` (``item_id:token``, every item of the catalogue,
so the catalogue holds ``items`` items even where some are never drawn). Both are
written to temporary names and moved into place together.

Usage::

    python -m recbole_ssl.data.synthetic --users 20000 --items 1000000 \\
        --interactions 200000 --output-dir dataset_synthetic [--name NAME] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recbole_ssl.data.convert import ConvertError, write_atomically

MIN_LENGTH = 3  # one training, one validation and one test item


def sequences(users, items, interactions, alpha=1.0, seed=0):
    """``(lengths [users], item ids [interactions])``: the users' sequences laid end
    to end, item ids ``1 .. items``."""
    if users < 1 or items < 2:
        raise ConvertError(f"need users >= 1 and items >= 2, got {users} and {items}")
    if interactions < MIN_LENGTH * users:
        raise ConvertError(
            f"interactions must be at least {MIN_LENGTH} per user "
            f"({MIN_LENGTH * users} for {users} users), got {interactions}"
        )
    if alpha < 0:
        raise ConvertError(f"alpha must be >= 0, got {alpha}")
    rng = np.random.default_rng(seed)
    extra = rng.multinomial(
        interactions - MIN_LENGTH * users, np.full(users, 1 / users)
    )
    lengths = MIN_LENGTH + extra
    popularity = np.arange(1, items + 1, dtype=np.float64) ** -alpha
    ranks = rng.choice(items, size=interactions, p=popularity / popularity.sum())
    ids = rng.permutation(items) + 1  # the item id of each popularity rank
    return lengths, ids[ranks]


def generate(output_dir, name, users, items, interactions, alpha=1.0, seed=0):
    """Write the dataset (see the module docstring); returns its folder."""
    if not name or name in {".", ".."} or "/" in name:
        raise ConvertError(
            f"invalid dataset name {name!r}: must be a plain folder name"
        )
    lengths, drawn = sequences(users, items, interactions, alpha, seed)
    user_ids = np.repeat(np.arange(1, users + 1), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(interactions) - starts
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    inter += [
        f"{u}\t{i}\t{t}" for u, i, t in zip(user_ids, drawn, positions, strict=True)
    ]
    item = ["item_id:token", *map(str, range(1, items + 1))]
    folder = Path(output_dir) / name
    write_atomically(folder, {f"{name}.inter": inter, f"{name}.item": item})
    return folder


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ssl.data.synthetic",
        description="Write a synthetic dataset with power-law item popularity.",
    )
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--interactions", type=int, required=True)
    parser.add_argument("--alpha", type=float, default=1.0, help="Zipf exponent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", required=True, help="parent output folder")
    parser.add_argument("--name", help="dataset name (default synthetic-ITEMS)")
    return parser


def main(argv=None):
    """Command line entry point; returns the exit code (0 ok, 2 invalid input)."""
    args = _build_parser().parse_args(argv)
    name = args.name or f"synthetic-{args.items}"
    try:
        folder = generate(
            args.output_dir,
            name,
            args.users,
            args.items,
            args.interactions,
            args.alpha,
            args.seed,
        )
    except ConvertError as exc:
        sys.stderr.write(f"synthetic: error: {' '.join(str(exc).split())}\n")
        return 2
    print(
        f"{name}: {args.users} users, {args.items} items, {args.interactions} interactions -> {folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
