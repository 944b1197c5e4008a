"""recbole_ssl.model.losses: the contrastive and the sampled next-item losses shared by
the plugin's models.

In a distributed run every mean is over the global batch and every in-batch term
contrasts every rank's rows (:func:`recbole_ssl.distributed.gather_rows`,
:func:`recbole_ssl.distributed.global_mean`), so the ranks together optimise what one
process optimises on the whole batch; one process takes the plain code path.
"""

import math

import torch
import torch.nn.functional as F

from recbole_ssl.distributed import gather_rows, global_mean, is_distributed
from recbole_ssl.model.layers import length_bands, take_rows

REPRESENTATIONS = ("concat", "mean", "last")
SIMILARITIES = ("dot", "cos")


def cross_entropy(logits, target, reduction="mean"):
    """``F.cross_entropy``, whose mean is over the global batch in a distributed run."""
    if reduction == "mean" and is_distributed():
        return global_mean(F.cross_entropy(logits, target, reduction="none"))
    return F.cross_entropy(logits, target, reduction=reduction)


def sequence_representation(output, lengths, kind="concat"):
    """One vector per sequence from the encoder's position outputs ``[B, L, H]``.

    ``concat``: all positions concatenated (CoSeRec Sec. 4.2), aligned on the most
    recent item (the first H values belong to the last real item) with padding
    positions zeroed, so views of different lengths compare item by recency  # [B, L*H]
    ``mean``: the mean over real positions  # [B, H]
    ``last``: the output at the last real position  # [B, H]
    """
    batch, width, _ = output.shape
    positions = torch.arange(width, device=output.device)
    if kind == "last":
        return output[torch.arange(batch, device=output.device), lengths - 1]
    real = positions < lengths[:, None]  # [B, L]
    if kind == "mean":
        summed = (output * real[..., None]).sum(1)
        return summed / lengths[:, None].clamp(min=1).to(output.dtype)
    if kind == "concat":
        return recency_aligned(output, lengths).flatten(1)
    raise ValueError(f"unknown sequence representation {kind!r}; use {REPRESENTATIONS}")


def recency_aligned(output, lengths):
    """Position outputs re-ordered from the most recent item back, padding zeroed.

    Row ``b``, slot ``k`` holds the output at position ``lengths[b] - 1 - k``.  # [B, L, H]
    """
    positions = torch.arange(output.size(1), device=output.device)
    recency = (lengths[:, None] - 1 - positions).clamp(min=0)  # [B, L]
    aligned = output.gather(1, recency[..., None].expand_as(output))
    return aligned * (positions < lengths[:, None])[..., None]


def concat_gram(output, lengths):
    """Dot products of the ``concat`` representations of all rows.  # [B, B]

    Equal to ``rep @ rep.t()`` with ``rep = sequence_representation(output, lengths,
    "concat")``, but slots past a row's length are zero, so with the rows sorted by
    length each band of slots only multiplies the rows long enough to reach it: on
    short-sequence data a fraction of the dense ``[B, L*H]`` product.
    """
    batch, width, _ = output.shape
    order = lengths.argsort(descending=True)
    sorted_lengths = lengths[order]
    gram = None
    lower = 0
    for upper in length_bands(width):
        rows = int((sorted_lengths > lower).sum())  # a prefix of the sorted rows
        if rows:
            slots = torch.arange(lower, upper, device=output.device)  # [S]
            position = sorted_lengths[:rows, None] - 1 - slots  # [rows, S]
            band = output[order[:rows, None], position.clamp(min=0)]  # [rows, S, H]
            band = (band * (position >= 0)[..., None]).flatten(1)
            part = F.pad(band @ band.t(), (0, batch - rows, 0, batch - rows))
            gram = part if gram is None else gram + part
        lower = upper
    restore = order.argsort()
    return gram[restore][:, restore]


def nt_xent_from_similarity(similarity):
    """NT-Xent from the ``[2N, 2N]`` similarities of ``[view1; view2]``.

    Row ``u`` and row ``u + N`` are a positive pair; the diagonal is excluded.
    """
    n = similarity.size(0) // 2
    self_pair = torch.eye(2 * n, dtype=torch.bool, device=similarity.device)
    logits = similarity.masked_fill(self_pair, -torch.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(logits.device)
    return F.cross_entropy(logits, partner)


def nt_xent(view1, view2, temperature=1.0, similarity="dot"):
    """NT-Xent over 2N views with in-batch negatives (CoSeRec Eq. 14, SimCLR).

    ``view1[u]`` and ``view2[u]`` are a positive pair; each of the 2N views is an
    anchor whose negatives are the other 2(N - 1) views. Returns the mean over the 2N
    anchors, i.e. ``1 / 2N * sum_u [l(2u-1, 2u) + l(2u, 2u-1)]`` (Algorithm 1, line 15).
    ``similarity`` is ``dot`` (the paper) or ``cos``; scores are divided by
    ``temperature``.
    """
    if is_distributed():
        return _nt_xent_global(view1, view2, temperature, similarity)
    views = torch.cat([view1, view2], dim=0)  # [2N, D]
    return nt_xent_from_similarity(
        similarity_matrix(views @ views.t(), similarity) / temperature
    )


def _nt_xent_global(view1, view2, temperature, similarity):
    """:func:`nt_xent` of a distributed run: this rank's 2n anchors against every
    rank's 2N views, the mean over all 2N anchors (:func:`global_mean`)."""
    if similarity == "cos":
        view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    elif similarity != "dot":
        raise ValueError(f"unknown similarity {similarity!r}; use {SIMILARITIES}")
    all1, offset = gather_rows(view1)
    all2, _ = gather_rows(view2)
    n, total = view1.size(0), all1.size(0)
    anchors = torch.cat([view1, view2])  # [2n, D]
    logits = anchors @ torch.cat([all1, all2]).t() / temperature  # [2n, 2N]
    own = torch.arange(n, device=logits.device) + offset
    rows = torch.arange(2 * n, device=logits.device)
    itself = torch.zeros_like(logits, dtype=torch.bool)
    itself[rows, torch.cat([own, own + total])] = True
    partner = torch.cat([own + total, own])
    logits = logits.masked_fill(itself, -torch.inf)
    return global_mean(F.cross_entropy(logits, partner, reduction="none"))


def similarity_matrix(gram, similarity):
    """``dot``: the Gram matrix itself; ``cos``: divided by the norms from its diagonal."""
    if similarity == "dot":
        return gram
    if similarity == "cos":
        norms = gram.diagonal().clamp(min=1e-16).sqrt()
        return gram / (norms[:, None] * norms[None, :])
    raise ValueError(f"unknown similarity {similarity!r}; use {SIMILARITIES}")


def intent_nce(views, intents, intent_ids=None, temperature=1.0, similarity="dot"):
    """Intent contrastive loss of ICLRec (Chen et al., WWW 2022, Eqs. 16-17).

    ``views[u]`` ([N, H]) is contrasted with its sequence's intent centroid
    ``intents[u]`` ([N, H]); the centroids of the other rows of the batch are the
    negatives. With ``intent_ids`` ([N] cluster ids) False-Negative Mitigation (Eq. 17)
    drops from each denominator the other rows that share the anchor's intent, whose
    centroid is the anchor's own; the positive itself stays. Mean over the N anchors.
    """
    if similarity == "cos":
        views, intents = F.normalize(views, dim=1), F.normalize(intents, dim=1)
    elif similarity != "dot":
        raise ValueError(f"unknown similarity {similarity!r}; use {SIMILARITIES}")
    # in a distributed run the negatives are every rank's rows' centroids
    all_intents, offset = gather_rows(intents)
    logits = views @ all_intents.t() / temperature  # [N, N] (one process)
    target = torch.arange(views.size(0), device=views.device) + offset
    if intent_ids is not None:
        all_ids, _ = gather_rows(intent_ids)
        same = intent_ids[:, None] == all_ids[None, :]
        same[torch.arange(views.size(0), device=views.device), target] = False
        logits = logits.masked_fill(same, -torch.inf)
    return cross_entropy(logits, target)


def mince(
    predictions,
    targets,
    instances,
    instance_items,
    temperature,
    multi=True,
    similarity="dot",
):
    """MMInfoRec's multi-instance NCE (Eq. 6), or the vanilla NCE of Eq. 5.

    Args:
        predictions: ``[P, D]`` predicted latents, one per scored position.
        targets: ``[P]`` the item each prediction should match.
        instances: ``[N, q, D]`` the batch's encoded items, ``q`` dropout copies each
            (MMInfoRec: the ground truths of all scored positions).
        instance_items: ``[N]`` their item ids.
        temperature: a true temperature (logits are divided by it).
        similarity: ``dot`` (the paper's ``z_hat . z``) or ``cos`` (both unit length).
        multi: MINCE: the positives of a prediction are all copies of every
            instance of its target item (repeats in the batch included); every other
            copy is a negative (other sequences: general, same sequence: temporal).
            ``False``: vanilla NCE on the first copy only: the positive is instance
            ``p`` itself (so ``N`` must equal ``P``), negatives are the instances of
            other items; other instances of the same item are left out, never
            negatives of themselves.

    Returns:
        The mean over predictions of ``-log(sum_pos exp(s) / sum_(pos+neg) exp(s))``.
    """
    if not multi:
        instances = instances[:, :1]
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; use {SIMILARITIES}")
    if similarity == "cos":
        predictions = F.normalize(predictions, dim=-1)
        instances = F.normalize(instances, dim=-1)
    # distributed: every rank's instances, this rank's predictions, the global mean
    instances, offset = gather_rows(instances)
    instance_items, _ = gather_rows(instance_items)
    n, q, dim = instances.shape
    predictions = predictions / temperature  # [P, D], cheaper than dividing the logits
    logits = predictions @ instances.reshape(n * q, dim).t()  # [P, N*q]
    if multi:  # every instance is a candidate; the few positives are scored apart
        rows, cols = (targets[:, None] == instance_items[None, :]).nonzero(
            as_tuple=True
        )
        # take_rows: ids repeat (an item's instances), so a fixed order of summing
        positive = take_rows(predictions, rows)[:, None] * take_rows(instances, cols)
        positive = positive.sum(-1)  # [pairs, q]
        return global_mean(
            torch.logsumexp(logits, dim=1)
            - _row_logsumexp(positive, rows, len(targets))
        )
    # Eq. 5 (q is 1 here): prediction p's positive is its own instance, the other
    # instances of its item are no candidates at all
    own = torch.arange(len(targets), device=logits.device)
    others = targets[:, None] == instance_items[None, :]
    others[own, own + offset] = False
    all_lse = torch.logsumexp(
        logits.masked_fill(others, torch.finfo(logits.dtype).min), dim=1
    )
    return global_mean(all_lse - logits[own, own + offset])


def _row_logsumexp(values, rows, n_rows):
    """``out[r] = logsumexp(values[rows == r].flatten())`` for ``values`` ``[K, q]``
    grouped by ``rows`` ``[K]``; ``-inf`` for a row with no values.  # [n_rows]"""
    top = values.new_full((n_rows,), -math.inf)
    top = top.scatter_reduce(0, rows, values.detach().amax(1), "amax")
    finite = top.clamp_min(torch.finfo(values.dtype).min)  # rows without values
    shifted = (values - finite[rows, None]).exp().sum(1)
    return finite + values.new_zeros(n_rows).index_add(0, rows, shifted).log()


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return global_mean(loss)  # loss.mean() in one process


def bce_next_item(pos_score, neg_score, reduction="mean"):
    """Binary cross-entropy of the papers' code (SASRec's): per scored position,
    ``-log sigmoid(s_pos) - sum_j log(1 - sigmoid(s_neg_j))``, mean over positions.

    ``pos_score`` ``[N]``; ``neg_score`` ``[N, k]``, ``k`` negatives per position.
    """
    loss = -F.logsigmoid(pos_score) - F.logsigmoid(-neg_score).sum(-1)
    return _reduce(loss, reduction)


def bpr_next_item(pos_score, neg_score, reduction="mean"):
    """BPR: per scored position ``-mean_j log sigmoid(s_pos - s_neg_j)``, mean over
    positions (``pos_score`` ``[N]``, ``neg_score`` ``[N, k]``)."""
    loss = -F.logsigmoid(pos_score[:, None] - neg_score).mean(-1)
    return _reduce(loss, reduction)


def sampled_softmax(
    pos_score,
    neg_score,
    accidental=None,
    pos_log_q=None,
    neg_log_q=None,
    reduction="mean",
):
    """The sampled softmax (``loss_type: SSM``): per scored position, the cross-entropy
    of its target among itself and ``m`` sampled negatives,
    ``logsumexp([s_pos, s_neg_1 .. s_neg_m]) - s_pos``, mean over positions.

    ``pos_score`` ``[N]``; ``neg_score`` ``[N, m]`` (negatives shared by all rows, or
    drawn per row). ``accidental`` ``[N, m]`` marks negatives that are the row's own
    target: they leave the softmax (TensorFlow's ``remove_accidental_hits``). With the
    logQ correction every score first loses the log-probability of drawing its item,
    ``pos_log_q`` ``[N]`` and ``neg_log_q`` ``[m]`` or ``[N, m]`` (Bengio and Senecal;
    Yi et al., RecSys 2019), so popular negatives are not over-penalised; under
    uniform sampling it shifts every score equally and changes nothing.
    """
    if pos_log_q is not None:
        pos_score = pos_score - pos_log_q
        neg_score = neg_score - neg_log_q
    if accidental is not None:
        neg_score = neg_score.masked_fill(accidental, -math.inf)
    logits = torch.cat([pos_score[:, None], neg_score], dim=1)  # [N, 1 + m]
    return _reduce(torch.logsumexp(logits, dim=1) - pos_score, reduction)
