"""recbole_ssl.trainer.user_groups: test metrics by group of users, by the length of
their training sequence (ICLRec's Figure 3).

Every test user's target is ranked among all items with the model's full-sort scores,
history masked as in RecBole's evaluation; users are split into groups of equal size
by training length (shortest first; ties in order of user id), and Hit and NDCG at the
configured cut-offs are given per group. Used by the training runs (``eval_groups``,
:func:`recbole_ssl.quick_start.record_groups`) and by ``python -m recbole_ssl.groups``
on saved checkpoints.
"""

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
