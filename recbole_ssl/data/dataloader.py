"""recbole_ssl.data.dataloader: full-sort evaluation that masks each user's history.

RecBole's ``FullSortEvalDataLoader`` masks nothing for sequential models. The papers'
protocol ranks the target against all items the user has not interacted with before it,
so this loader passes RecBole's trainer the history of each row, which it sets to
``-inf`` before the metrics (``Trainer._full_sort_batch_eval``). The metrics themselves
stay RecBole's.
"""

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader

from recbole_ssl.data.dataset import concat_ranges


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
