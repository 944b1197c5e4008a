"""recbole_ssl.data.dataloader: full-sort evaluation that masks each user's history,
and distributed loaders that deal out one process's batches.

RecBole's ``FullSortEvalDataLoader`` masks nothing for sequential models. The papers'
protocol ranks the target against all items the user has not interacted with before it,
so :class:`HistoryMaskedFullSortEvalDataLoader` passes RecBole's trainer the history of
each row, which it sets to ``-inf`` before the metrics
(``Trainer._full_sort_batch_eval``). The metrics themselves stay RecBole's.

In a distributed run RecBole deals rows with torch's ``DistributedSampler``, which pads
the rows up to a multiple of the ranks with copies of the first ones: up to
``world_size - 1`` rows count twice per epoch (and per evaluation), and the order is
drawn by a generator of its own rather than the loader's. :func:`global_batches`
rebuilds a loader so that every rank walks through exactly the batches one process
would (same order, same generator, same size) and collates its stride of each, rows
``rank, rank + world_size, ...``: no row twice, none left out, the same number of
batches on every rank (a rank whose stride of a small last batch is empty collates an
empty batch, which every plugin model takes).
"""

import functools

import numpy as np
import torch
from recbole.data.dataloader import (
    FullSortEvalDataLoader,
    NegSampleEvalDataLoader,
    TrainDataLoader,
)

from recbole_ssl.data.dataset import concat_ranges
from recbole_ssl.distributed import process_group


class HistoryMaskedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """Sequential full-sort evaluation with the user's earlier items masked."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        self.history_ptr, self.history_items = dataset.history_before_targets()

    def collate_fn(self, index):
        interaction, _, positive_u, positive_i = super().collate_fn(index)
        index = np.asarray(index, dtype=np.int64)
        starts = self.history_ptr[index]
        counts = self.history_ptr[index + 1] - starts
        history_u = np.repeat(np.arange(len(index)), counts)
        history_i = self.history_items[concat_ranges(starts, counts)]
        history = (torch.from_numpy(history_u), torch.from_numpy(history_i))
        return interaction, history, positive_u, positive_i


def history_masked(loader):
    """Rebuild a sequential full-sort loader as a history-masked one when configured.

    Other loaders (general models, sampled evaluation) are returned unchanged: RecBole
    already masks history there.
    """
    config = loader.config
    dataset = loader._dataset
    if (
        type(loader) is FullSortEvalDataLoader
        and loader.is_sequential
        and config["eval_mask_history"]
        and getattr(dataset, "user_history", None) is not None
    ):
        return HistoryMaskedFullSortEvalDataLoader(config, dataset, loader._sampler)
    return loader


class ReshuffledSampler(torch.utils.data.RandomSampler):
    """torch's ``RandomSampler`` with the ``set_epoch`` RecBole's trainer calls in a
    distributed run. It changes nothing: each epoch's order is drawn from the loader's
    generator, which every rank seeds alike and which moves on from epoch to epoch,
    as in one process (and is restored on resume)."""

    def set_epoch(self, epoch):
        pass


def _collate_stride(collate_fn, rank, world_size, index):
    """``collate_fn`` of this rank's rows of one process's batch ``index``."""
    return collate_fn(np.asarray(index[rank::world_size], dtype=np.int64))


class _OneProcessBatches(torch.utils.data.DataLoader):
    """Sits right below RecBole's ``AbstractDataLoader`` in the classes
    :func:`global_batches` builds, so it receives what RecBole's distributed branch
    hands torch's ``DataLoader`` (a ``DistributedSampler``, the batch size divided by
    the ranks) and hands torch one process's sampler and batch size instead, with a
    collate function that keeps this rank's stride of each batch."""

    def __init__(self, dataset, collate_fn, generator, **recbole_distributed_args):
        rank, world_size, _ = process_group()
        self._init_batch_size_and_step()  # one process's step: RecBole divided it
        if self.shuffle:
            order = ReshuffledSampler(dataset, generator=generator)
        else:
            order = torch.utils.data.SequentialSampler(dataset)
        super().__init__(
            dataset=dataset,
            batch_size=self.step,
            sampler=order,
            collate_fn=functools.partial(_collate_stride, collate_fn, rank, world_size),
            num_workers=recbole_distributed_args["num_workers"],
            generator=generator,
        )


@functools.lru_cache(maxsize=None)
def _global_batch_class(loader_class):
    return type(loader_class.__name__, (loader_class, _OneProcessBatches), {})


SHARDED_LOADERS = (TrainDataLoader, FullSortEvalDataLoader, NegSampleEvalDataLoader)


def global_batches(loader):
    """``loader`` rebuilt to deal one process's batches over the ranks (see the module
    docstring), in a distributed run; ``loader`` itself otherwise, or when it is not
    one of RecBole's training and evaluation loaders."""
    if process_group() is None or not isinstance(loader, SHARDED_LOADERS):
        return loader
    return _global_batch_class(type(loader))(
        loader.config, loader._dataset, loader._sampler, shuffle=loader.shuffle
    )
