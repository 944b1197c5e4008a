"""recbole_ssl.model.losses: contrastive losses shared by the plugin's models."""

import torch
import torch.nn.functional as F

REPRESENTATIONS = ("concat", "mean", "last")
SIMILARITIES = ("dot", "cos")


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
        recency = (lengths[:, None] - 1 - positions).clamp(min=0)  # [B, L]
        aligned = output.gather(1, recency[..., None].expand_as(output))
        return (aligned * real[..., None]).flatten(1)
    raise ValueError(f"unknown sequence representation {kind!r}; use {REPRESENTATIONS}")


def nt_xent(view1, view2, temperature=1.0, similarity="dot"):
    """NT-Xent over 2N views with in-batch negatives (CoSeRec Eq. 14, SimCLR).

    ``view1[u]`` and ``view2[u]`` are a positive pair; each of the 2N views is an
    anchor whose negatives are the other 2(N - 1) views. Returns the mean over the 2N
    anchors, i.e. ``1 / 2N * sum_u [l(2u-1, 2u) + l(2u, 2u-1)]`` (Algorithm 1, line 15).
    ``similarity`` is ``dot`` (the paper) or ``cos``; scores are divided by
    ``temperature``.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; use {SIMILARITIES}")
    n = view1.size(0)
    views = torch.cat([view1, view2], dim=0)  # [2N, D]
    if similarity == "cos":
        views = F.normalize(views, dim=1)
    logits = views @ views.t() / temperature  # [2N, 2N]
    self_pair = torch.eye(2 * n, dtype=torch.bool, device=views.device)
    logits = logits.masked_fill(self_pair, -torch.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(views.device)
    return F.cross_entropy(logits, partner)
