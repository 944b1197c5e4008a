"""recbole_ssl.groups: test metrics of saved models by user group, as run records.

    python -m recbole_ssl.groups CHECKPOINT [CHECKPOINT ...] [--groups 5]

For each checkpoint saved by ``run_recbole_ssl.py`` (its own settings, data and split,
as ``--evaluate`` rebuilds them) every test user's target is ranked among all items
with the model's full-sort scores, history masked as in RecBole's evaluation. Users are
split by the length of their training sequence into ``--groups`` groups of equal size
(shortest first; ties in order of user id), and Hit and NDCG at the configured cut-offs
are given per group, as ICLRec's Figure 3 does for the claim that its gain concentrates
on users with short sequences. The overall figures are checked against RecBole's own
evaluation of the same checkpoint, so the ranks are the evaluator's.

Each checkpoint's result is an evaluation run record (``kind: evaluate``, ``groups``:
bounds, users and metrics per group) in ``record_dir``, next to the training records.
A single-process training run records the same ``groups`` of its tested model itself
(``eval_groups``, 5 by default), so no checkpoint needs keeping for them.
"""

import argparse
import sys

import numpy as np
import torch

from recbole_ssl.errors import RecBoleSSLError


def test_ranks(model, test_data, top=None):
    """Each test row's target rank among all items (0 = first), in the rows' order;
    the padding item and the row's history excluded as in RecBole's full sort. With
    ``top``, also each row's ``top`` best item ids: ``(ranks, tops)``."""
    ranks, tops = [], []
    model.eval()
    n_items = test_data._dataset.item_num
    with torch.no_grad():
        for interaction, history, positive_u, positive_i in test_data:
            scores = model.full_sort_predict(interaction.to(model.device))
            scores = scores.view(-1, n_items).cpu()
            scores[:, 0] = -torch.inf
            if history is not None:
                scores[history] = -torch.inf
            target = torch.zeros(scores.size(0), dtype=torch.long)
            target[positive_u] = positive_i
            truth = scores.gather(1, target[:, None])
            ranks.append((scores > truth).sum(1))
            if top:
                tops.append(scores.topk(top, dim=1).indices)
    if top:
        return torch.cat(ranks).numpy(), torch.cat(tops).numpy()
    return torch.cat(ranks).numpy()


def training_lengths(test_dataset):
    """Each test row's number of training interactions: its history before the test
    target, less the validation item (leave-one-out)."""
    history = test_dataset.history_before_targets()
    if history is None:
        raise RecBoleSSLError(
            "groups: the dataset keeps no user histories (a pre-split benchmark)"
        )
    row_ptr, _ = history
    return np.diff(row_ptr) - 1


def equal_groups(lengths, users, n_groups):
    """Group ids (0 = shortest) splitting users into ``n_groups`` groups of equal
    size (sizes differ by at most one), by length, then user id."""
    order = np.lexsort((users, lengths))
    group = np.empty(len(lengths), dtype=np.int64)
    for g, rows in enumerate(np.array_split(order, n_groups)):
        group[rows] = g
    return group


def metrics_of(ranks, topk):
    """``{hit@k, ndcg@k}`` means of the given ranks."""
    result = {}
    for k in topk:
        result[f"hit@{k}"] = float(np.mean(ranks < k))
    for k in topk:
        result[f"ndcg@{k}"] = float(
            np.mean(np.where(ranks < k, 1 / np.log2(ranks + 2), 0))
        )
    return result


def group_metrics(model, test_data, n_groups, topk):
    """``(groups, overall)``: the test metrics of ``model`` per group of users by
    training length (:func:`equal_groups`) and over all of them, from the ranks of
    :func:`test_ranks`."""
    dataset = test_data._dataset
    ranks = test_ranks(model, test_data)
    lengths = training_lengths(dataset)
    users = dataset.inter_feat[dataset.uid_field].numpy()
    group = equal_groups(lengths, users, n_groups)
    groups = []
    for g in range(n_groups):
        rows = group == g
        groups.append(
            {
                "group": g,
                "users": int(rows.sum()),
                "min_length": int(lengths[rows].min()),
                "max_length": int(lengths[rows].max()),
                "metrics": metrics_of(ranks[rows], topk),
            }
        )
    return groups, metrics_of(ranks, topk)


def disagreement(overall, recbole):
    """The first metric where the ranks' figure and RecBole's evaluator differ beyond
    RecBole's rounding to 4 digits, as a sentence; None where they agree."""
    for metric, value in recbole.items():
        if metric in overall and abs(overall[metric] - value) > 5e-5:
            return (
                f"{metric} from the ranks is {overall[metric]:.6f}, RecBole's "
                f"evaluator gives {value}"
            )
    return None


def evaluate_groups(path, n_groups=5):
    """Rank the test targets of checkpoint ``path`` and write its evaluation record
    with the group metrics; returns ``(config, groups, overall, recbole)``."""
    from recbole_ssl.quick_start import load_data_and_model
    from recbole_ssl.record import recording
    from recbole_ssl.utils import get_trainer

    config, model, _, _, _, test_data = load_data_and_model(
        path, {"show_progress": False}
    )
    groups, overall = group_metrics(model, test_data, n_groups, list(config["topk"]))
    with recording(config, "evaluate", "groups", config.log_file) as record:
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        recbole = trainer.evaluate(test_data, load_best_model=False)
        problem = disagreement(overall, recbole)
        if problem:
            raise RuntimeError(f"groups: {problem}")
        if record is not None:
            record.data["groups"] = {"by": "train_length", "groups": groups}
            record.finish(None, recbole, checkpoint=path)
    return config, groups, overall, recbole


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ssl.groups", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--groups", type=int, default=5)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config reads the command line: not ours
    if args.groups < 1:
        parser.error("--groups must be an integer >= 1")
    try:
        for path in args.checkpoints:
            config, groups, overall, _ = evaluate_groups(path, args.groups)
            print(
                f"{path} ({config['model']}): NDCG@20 {overall.get('ndcg@20', 0):.4f}"
            )
            for g in groups:
                print(
                    f"  length {g['min_length']}-{g['max_length']} ({g['users']} users):"
                    + "".join(
                        f" {m} {v:.4f}" for m, v in g["metrics"].items() if "@20" in m
                    )
                )
    except RecBoleSSLError as e:
        sys.stderr.write(f"python -m recbole_ssl.groups: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
