"""recbole_ssl.distributed: what one rank shares with the others in RecBole's
distributed mode (no-ops in a single process).

Below the models and trainers: it imports nothing of the plugin.
"""

import torch


def process_group():
    """``(rank, world_size, device for collectives)`` in a distributed run, else None.

    NCCL exchanges CUDA tensors, gloo CPU ones.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed():
    """Whether this process is one rank of an initialised process group."""
    return process_group() is not None


def broadcast_from_rank0(tensor):
    """``tensor`` as rank 0 has it, in a distributed run; ``tensor`` itself otherwise.

    For what one rank computes for all (item correlations, cluster centroids), so no
    rank silently uses its own copy.
    """
    group = process_group()
    if group is None:
        return tensor
    shared = tensor.detach().to(group[2]).contiguous()
    torch.distributed.broadcast(shared, src=0)
    return shared.to(tensor.device)


def broadcast_object(value):
    """A picklable ``value`` as rank 0 has it, in a distributed run (e.g. a file name
    holding the local time, on which ranks may disagree by a second)."""
    if process_group() is None:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value):
    """``[rank 0's value, rank 1's, ...]`` of a picklable ``value`` in a distributed
    run (every rank gets the list); ``[value]`` otherwise."""
    group = process_group()
    if group is None:
        return [value]
    values = [None] * group[1]
    torch.distributed.all_gather_object(values, value)
    return values


def gather_from_all_ranks(tensor):
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (``tensor`` itself
    if not distributed), without gradients. Ranks may hold different numbers of rows."""
    return gather_rows(tensor.detach())[0]


def row_counts(count):
    """Every rank's ``count`` (an int), in rank order: ``[count]`` in one process."""
    group = process_group()
    if group is None:
        return [count]
    device = group[2]
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(group[1])]
    torch.distributed.all_gather(counts, torch.tensor([count], device=device))
    return [int(c.item()) for c in counts]


class _GatherRows(torch.autograd.Function):
    """All ranks' rows in rank order; the backward sums every rank's gradient of the
    gathered rows and hands each rank the part for its own rows."""

    @staticmethod
    def forward(ctx, tensor, counts):
        group = process_group()
        device = group[2]
        local = tensor.detach().to(device).contiguous()
        padded = local.new_zeros(max(counts), *local.shape[1:])
        padded[: local.size(0)] = local
        gathered = [torch.zeros_like(padded) for _ in counts]
        torch.distributed.all_gather(gathered, padded)
        ctx.counts, ctx.rank, ctx.device = counts, group[0], tensor.device
        parts = [part[:n] for part, n in zip(gathered, counts, strict=True)]
        return torch.cat(parts).to(tensor.device)

    @staticmethod
    def backward(ctx, grad):
        total = grad.detach().to(process_group()[2]).contiguous().clone()
        torch.distributed.all_reduce(total)  # the gradients of every rank's terms
        start = sum(ctx.counts[: ctx.rank])
        return total[start : start + ctx.counts[ctx.rank]].to(ctx.device), None


def gather_rows(tensor):
    """``(rows, offset)``: every rank's ``tensor`` concatenated along dim 0 in rank
    order, and where this rank's own rows start in it.

    Gradients flow back to the rank that produced each row, summed over every rank
    whose loss used it, so an in-batch loss over ``rows`` contrasts the global batch
    as one process would (with :func:`global_mean` over each rank's own terms). Ranks
    may hold different numbers of rows, none included. Every rank must call it, in the
    same order. ``(tensor, 0)`` outside a distributed run.
    """
    group = process_group()
    if group is None:
        return tensor, 0
    counts = row_counts(tensor.size(0))
    return _GatherRows.apply(tensor, counts), sum(counts[: group[0]])


def global_mean(losses):
    """The mean of every rank's ``losses`` (per-row or per-position terms), scaled for
    DDP: each rank returns ``sum(its terms) * world_size / (all ranks' terms)``, so
    DDP's average of the ranks' gradients is the gradient of the mean over the global
    batch, the one-process objective, however unevenly the terms are spread over the
    ranks. ``losses.mean()`` outside a distributed run; 0 (still part of the graph)
    when there are no terms at all."""
    if process_group() is not None:
        return global_average(losses.sum(), losses.numel())
    if losses.numel() == 0:
        return losses.sum() * 0.0
    return losses.mean()


def global_sum(losses):
    """The sum of every rank's ``losses``, scaled for DDP: each rank returns
    ``sum(its terms) * world_size``, so DDP's average of the ranks' gradients is the
    gradient of the sum over the global batch, the one-process objective.
    ``losses.sum()`` outside a distributed run."""
    group = process_group()
    return losses.sum() if group is None else losses.sum() * group[1]


def global_average(total, count):
    """``total / count`` for a loss that is this rank's sum of terms ``total`` divided
    by its own ``count`` (e.g. rows, when terms are per position): over every rank's
    counts, times the world size, as :func:`global_mean`. ``total / count`` outside a
    distributed run."""
    group = process_group()
    if group is None:
        return total / count
    return total * (group[1] / max(sum(row_counts(count)), 1))
