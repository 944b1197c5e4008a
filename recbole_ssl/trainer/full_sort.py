"""recbole_ssl.trainer.full_sort: RecBole's full-sort evaluation in bounded memory.

RecBole scores a batch of ``eval_batch_size`` users against every item at once and
hands the ``[users, items]`` scores to its collector, which builds an integer matrix of
the same shape beside them: at a million items, 2,048 users take 8 GB of scores and 8 GB
more. :func:`top_k_scores` scores the batch a few users at a time (at most
``eval_max_scores`` scores held at once), keeps each user's ``k`` best items, and
returns what the collector's top-k metrics need in a compact form: per user the ``k``
best scores in order, followed by one column per ground-truth item outside them, and
the ground truths' columns in that table. From it the collector computes exactly the
ranks and counts the full table gives, so Hit, NDCG, MRR, Recall, Precision and MAP are
unchanged; metrics that need every score or the recommended item ids (``rec.score``,
``rec.meanrank``, ``rec.items``) keep RecBole's path.
"""

import torch

# what RecBole's collector derives from the whole score table other than the top k
WHOLE_TABLE_KEYS = ("rec.items", "rec.meanrank", "rec.score")


def needs_whole_table(collector):
    """Whether ``collector`` (RecBole's) needs more than the top-k ranks."""
    return any(collector.register.need(key) for key in WHOLE_TABLE_KEYS)


def top_k_scores(score_rows, n_rows, history_index, positive_u, positive_i, k, rows):
    """The compact table of a batch's top ``k`` and where its ground truths sit.

    Args:
        score_rows: ``score_rows(start, end)`` gives the full-sort scores of the
            batch's users ``start .. end - 1``  # [end - start, n_items]
        n_rows: the batch's user count.
        history_index: RecBole's ``(rows, items)`` of the items to mask, or None.
        positive_u, positive_i: RecBole's ground truths (row, item) of the batch.
        k: the largest cut-off of the metrics.
        rows: users scored at once.

    Returns:
        ``(table, positive_column)``: ``table`` ``[n_rows, k + m]`` holds each user's
        ``k`` best scores in decreasing order (padding and history masked, as RecBole
        masks them), then ``m`` columns of ``-inf`` (``m`` the most ground truths of a
        user); ``positive_column`` ``[P]`` is each ground truth's column: its place
        in the top ``k``, else one of its user's extra columns.
    """
    values, items = [], []
    for start in range(0, n_rows, rows):
        end = min(start + rows, n_rows)
        scores = score_rows(start, end)
        scores[:, 0] = -torch.inf  # the padding item, as RecBole
        if history_index is not None:
            own = (history_index[0] >= start) & (history_index[0] < end)
            scores[history_index[0][own] - start, history_index[1][own]] = -torch.inf
        best = torch.topk(scores, min(k, scores.size(1)), dim=1)
        values.append(best.values)
        items.append(best.indices)
    values, items = torch.cat(values), torch.cat(items)  # [n_rows, k]
    # a masked item among the best (fewer than k unmasked) stays above the extra
    # columns, which only hold ground truths ranked below the k best
    values = values.clamp_min(torch.finfo(values.dtype).min)
    per_row = torch.bincount(positive_u, minlength=n_rows)
    extra = int(per_row.max()) if per_row.numel() else 0
    table = torch.full(
        (n_rows, values.size(1) + extra), -torch.inf, device=values.device
    )
    table[:, : values.size(1)] = values
    match = items[positive_u] == positive_i[:, None]  # [P, k]
    in_top = match.any(1)
    order = torch.argsort(positive_u, stable=True)
    first = torch.cumsum(per_row, 0) - per_row  # where each row's ground truths start
    ordinal = torch.empty_like(positive_u)
    ordinal[order] = (
        torch.arange(len(order), device=order.device) - first[positive_u[order]]
    )
    column = torch.where(in_top, match.int().argmax(1), values.size(1) + ordinal)
    return table, column
