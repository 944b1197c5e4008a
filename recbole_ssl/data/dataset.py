"""recbole_ssl.data.dataset: RecBole's sequential dataset with the plugin's two regimes.

``train_mode: prefix`` is RecBole's own: one training row per target item, the row's
input being the (at most ``MAX_ITEM_LIST_LENGTH``) items before it.

``train_mode: sequence`` keeps, in the training split only, one row per user: its
longest training prefix. A model that supports this regime (see
:class:`recbole_ssl.model.abstract_recommender.SequentialSSLRecommender`) scores the
next item at every position of that row, so each training target is still seen once
per epoch, in about ``1 / mean sequence length`` as many rows. With right-padded inputs
and causal attention both regimes give the same per-target losses, except for users
with more than ``MAX_ITEM_LIST_LENGTH + 1`` training items, whose earliest targets the
``sequence`` row no longer covers (the papers' code does the same).

Validation and test rows are RecBole's in both regimes.
"""

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset as RecBoleSequentialDataset
from recbole.utils import FeatureSource

from recbole_ssl.data.atomic import check_atomic_file
from recbole_ssl.errors import AtomicFileError


def concat_ranges(starts, counts):
    """``concat(arange(s, s + c) for s, c in zip(starts, counts))``, vectorised."""
    ends = np.cumsum(counts)
    offsets = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)
    return np.repeat(starts, counts) + offsets


class UserHistory:
    """Each user's full item sequence in time order, as CSR arrays.

    Kept before RecBole cuts interactions into prefix rows of bounded length, so the
    evaluation can mask every item a user had before the target, not only the last
    ``MAX_ITEM_LIST_LENGTH``.
    """

    def __init__(self, user_ids, item_ids, times, n_users):
        order = np.lexsort((times, user_ids))  # by user, then time
        self.items = item_ids[order]
        self.times = times[order]
        counts = np.bincount(user_ids, minlength=n_users)
        self.indptr = np.concatenate([[0], np.cumsum(counts)])

    def before(self, user_ids, times):
        """Items of ``user_ids[r]`` strictly before ``times[r]``, for every row r.

        Returns:
            (row_ptr, items): row r's history is ``items[row_ptr[r]:row_ptr[r + 1]]``.
        """
        starts = self.indptr[user_ids]
        counts = np.array(
            [
                np.searchsorted(self.times[s:e], t, side="left")
                for s, e, t in zip(
                    starts, self.indptr[user_ids + 1], times, strict=True
                )
            ],
            dtype=np.int64,
        )
        row_ptr = np.concatenate([[0], np.cumsum(counts)])
        return row_ptr, self.items[concat_ranges(starts, counts)]


class SequentialDataset(RecBoleSequentialDataset):
    """RecBole's ``SequentialDataset`` plus the ``sequence`` regime and users' histories."""

    user_history = None

    def _load_feat(self, filepath, source):
        """RecBole's loader, after :func:`recbole_ssl.data.atomic.check_atomic_file`:
        a malformed file is one line naming file, line and field, never a traceback
        from pandas or a silently filled value."""
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col != set():
            required = {
                FeatureSource.INTERACTION: [
                    self.uid_field,
                    self.iid_field,
                    self.time_field,
                ],
                FeatureSource.ITEM: [self.iid_field],
                FeatureSource.USER: [self.uid_field],
            }.get(source, [])
            loaded = None if load_col is None else set(load_col)
            if loaded is not None and unload_col:
                loaded -= set(unload_col)
            self._check_loaded(filepath, source, required, loaded)
            check_atomic_file(
                filepath,
                [f for f in required if f and (loaded is None or f in loaded)],
                loaded,
                self.config["field_separator"],
                self.config["seq_separator"],
                self.config["encoding"],
            )
        return super()._load_feat(filepath, source)

    def _check_loaded(self, filepath, source, required, loaded):
        """A field the run needs (user, item; the time when evaluating in time
        order) that ``load_col`` leaves out is one line naming it: RecBole would load
        the file without it and fail later, deep inside its sorting."""
        if loaded is None:
            return
        keys = {
            self.uid_field: "USER_ID_FIELD",
            self.iid_field: "ITEM_ID_FIELD",
            self.time_field: "TIME_FIELD",
        }
        in_time_order = (self.config["eval_args"] or {}).get("order", "TO") == "TO"
        for field in required:
            if not field or field in loaded:
                continue
            if field == self.time_field and not in_time_order:
                continue
            raise AtomicFileError(
                f"{filepath}: load_col['{source.value}'] is {sorted(loaded)}, without "
                f"{field!r} ({keys[field]}), which this run needs; add it to load_col "
                f"or set {keys[field]} to the file's column"
            )

    def data_augmentation(self):
        feat = self.inter_feat
        if self.time_field is None or self.time_field not in feat:
            return super().data_augmentation()  # RecBole reports the missing field
        self.user_history = UserHistory(
            feat[self.uid_field].numpy(),
            feat[self.iid_field].numpy(),
            feat[self.time_field].numpy(),
            self.user_num,
        )
        super().data_augmentation()

    def build(self):
        datasets = super().build()
        if self.config["train_mode"] == "sequence":
            datasets[0] = self.longest_prefix_rows(datasets[0])
        return datasets

    def longest_prefix_rows(self, dataset):
        """A copy of ``dataset`` with one row per user: the one with the latest target."""
        feat = dataset.inter_feat
        uids = feat[self.uid_field].numpy()
        order = np.lexsort((np.arange(len(uids)), feat[self.time_field].numpy(), uids))
        sorted_uids = uids[order]
        is_last = np.append(sorted_uids[1:] != sorted_uids[:-1], True)
        return dataset.copy(feat[torch.from_numpy(order[is_last])])

    def history_before_targets(self):
        """For each row of this (evaluation) split, the user's items before its target.

        Returns ``None`` when no history was recorded (pre-split benchmark files).
        """
        if self.user_history is None:
            return None
        return self.user_history.before(
            self.inter_feat[self.uid_field].numpy(),
            self.inter_feat[self.time_field].numpy(),
        )
