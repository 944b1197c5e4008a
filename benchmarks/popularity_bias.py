"""How popular are a trained model's recommendations, and where does it win or lose?

    python benchmarks/popularity_bias.py CHECKPOINT [CHECKPOINT ...] [--k 10] [--buckets 5]

For each checkpoint saved by ``run_recbole_ssl.py`` (its own settings, data and
split, as ``--evaluate`` rebuilds them) the script ranks every item for every test
user with the model's full-sort scores, the user's history masked as in RecBole's
evaluation, and prints:

* ``NDCG@k`` and ``HR@k`` from these ranks next to RecBole's own ``ndcg@k`` of the
  same checkpoint (the two must agree: a check that the ranks are the evaluator's);
* the mean and median popularity of the top-k items, popularity being an item's
  interactions outside the test split (what the model could have seen);
* ``NDCG@k`` and ``HR@k`` per popularity bucket of the test target (equal-sized
  quantiles of the target's popularity, least popular first).

A diagnostic for results/amazon-beauty.md, not an evaluation protocol: model
selection and every reported metric stay RecBole's.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from recbole_ssl.quick_start import load_data_and_model  # noqa: E402
from recbole_ssl.trainer.user_groups import test_ranks  # noqa: E402
from recbole_ssl.utils import RecBoleSSLError, get_trainer  # noqa: E402


def report(path, k, buckets):
    config, model, dataset, _, _, test_data = load_data_and_model(
        path, {"state": "ERROR", "show_progress": False}
    )
    ranks, tops = test_ranks(model, test_data, top=k)
    targets = test_data._dataset.inter_feat[dataset.iid_field].numpy()
    popularity = np.zeros(dataset.item_num)
    for item, count in dataset.item_counter.items():
        popularity[item] = count
    popularity -= np.bincount(targets, minlength=dataset.item_num)  # not the test
    ndcg = np.where(ranks < k, 1.0 / np.log2(ranks + 2), 0.0)
    hit = (ranks < k).astype(float)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    recbole = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    top = popularity[tops].mean(1)
    print(f"{path}  ({config['model']}, {len(ranks)} test users)")
    print(
        f"  NDCG@{k} {ndcg.mean():.4f} (RecBole: {recbole.get(f'ndcg@{k}', 'n/a')})"
        f"  HR@{k} {hit.mean():.4f}"
        f"  top-{k} popularity: mean {top.mean():.1f}, median {np.median(top):.1f}"
    )
    target_pop = popularity[targets]
    edges = np.quantile(target_pop, np.linspace(0, 1, buckets + 1)[1:-1])
    bucket = np.digitize(target_pop, edges)
    for b in range(buckets):
        rows = bucket == b
        if not rows.any():
            continue
        print(
            f"  target popularity {target_pop[rows].min():.0f}-"
            f"{target_pop[rows].max():.0f} ({rows.sum()} users): "
            f"NDCG@{k} {ndcg[rows].mean():.4f}  HR@{k} {hit[rows].mean():.4f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--buckets", type=int, default=5)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads the command line: not ours
    if args.k < 1 or args.buckets < 1:
        raise SystemExit("--k and --buckets must be integers >= 1")
    for path in args.checkpoints:  # all found before the first long evaluation
        if not os.path.isfile(path):
            raise SystemExit(f"checkpoint not found: {path}")
    for path in args.checkpoints:
        try:
            report(path, args.k, args.buckets)
        except RecBoleSSLError as error:  # e.g. a checkpoint RecBole itself saved
            raise SystemExit(f"{path}: {error}") from None


if __name__ == "__main__":
    main()
