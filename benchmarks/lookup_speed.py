"""The cost and the run-to-run agreement of a row lookup with gradients, ``table[ids]``
against :func:`recbole_ssl.model.layers.take_rows`, at the shapes of one training batch
on amazon-beauty.

    python benchmarks/lookup_speed.py [--threads 2] [--repeats 20]

Cases: the sampled BCE of SASRec (about 1,500 scored positions in a 256-user batch:
131,413 over 88 batches; target and one negative each, 64 wide, from the 12,102-item
table) and MMInfoRec's MINCE positives (2,000 pairs, each a prediction and one of the
batch's instances of its target, 4 dropout copies of 64). For each: milliseconds of
forward and backward (median of ``--repeats``) and how many of the repeats' gradients
differ from the first one's, bit for bit.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from bench_timing import machine_line  # noqa: E402

from recbole_ssl.model.layers import take_rows  # noqa: E402

CASES = {
    # name: (table rows, row shape, ids drawn from, number of ids)
    "SASRec BCE: target + negative": (12102, (64,), 12102, (1500, 2)),
    "MMInfoRec MINCE: instance pairs": (1500, (4, 64), 1500, (2000,)),
}
LOOKUPS = {"table[ids]": lambda table, ids: table[ids], "take_rows": take_rows}


def measure(lookup, table, ids, upstream, repeats):
    seconds, grads = [], []
    for _ in range(repeats):
        table.grad = None
        start = time.perf_counter()
        (lookup(table, ids) * upstream).sum().backward()
        seconds.append(time.perf_counter() - start)
        grads.append(table.grad.clone())
    differ = sum(not torch.equal(grads[0], grad) for grad in grads[1:])
    return 1000 * statistics.median(seconds), differ


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {machine_line()}, {args.repeats} repeats")
    print(f"{'case':34} {'lookup':12} {'ms':>7} {'differ':>7}")
    for name, (rows, shape, high, id_shape) in CASES.items():
        generator = torch.Generator().manual_seed(0)
        table = torch.randn(rows, *shape, generator=generator).requires_grad_()
        ids = torch.randint(1, high, id_shape, generator=generator)
        upstream = torch.randn(*id_shape, *shape, generator=generator)
        for label, lookup in LOOKUPS.items():
            ms, differ = measure(lookup, table, ids, upstream, args.repeats)
            print(f"{name:34} {label:12} {ms:7.2f} {differ:4}/{args.repeats - 1}")


if __name__ == "__main__":
    main()
