"""recbole_ssl.data.correlation: item correlations for informative augmentations.

CoSeRec (Liu et al., 2021, Sec. 4.1.3) picks the item to substitute or insert by one
of three correlations:

* memory-based, ItemCF-IUF (Eq. 9):
  ``Cor_o(i, j) = 1 / sqrt(|N(i)| |N(j)|) * sum_{u in N(i) & N(j)} 1 / log(1 + |N(u)|)``,
  from the training interactions only, stored as each item's top-k neighbours;
* model-based (Eq. 10): ``Cor_e(i, j) = e_i . e_j`` from the current item embeddings;
* hybrid (Eq. 11): per item, the source whose best (min-max normalised) score is higher.

Both score tables are min-max normalised over the same population, every pair of two
distinct real items (the padding item excluded; for ItemCF-IUF, pairs that never
co-occur score 0), so that Eq. 11 compares them on one scale. The authors' code bounds
ItemCF-IUF by its stored (co-occurring) pairs only and the dot products by all pairs
including each item with itself (and the padding row); the item's own dot product is
usually the largest, which shrinks every normalised model-based score and tilts Eq. 11
towards ItemCF. :class:`ItemCorrelation` answers
``most_correlated(items)`` with one batched table lookup; the model-based part is
recomputed by :meth:`ItemCorrelation.refresh_model_based`, which the trainer calls once
per epoch after the warm-up.
"""

import numpy as np
import scipy.sparse as sp
import torch


def training_pairs(dataset):
    """The distinct ``(user, item)`` pairs of a sequential training split.

    Every row's history (``ITEM_SEQ`` up to ``ITEM_SEQ_LEN``) and target
    (``POS_ITEM_ID``); in the training split of a leave-one-out split these are
    training interactions only, in both ``train_mode`` regimes.
    """
    config = dataset.config
    inter = dataset.inter_feat
    item_seq = inter[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]]
    lengths = inter[config["ITEM_LIST_LENGTH_FIELD"]]
    users = inter[config["USER_ID_FIELD"]]
    real = torch.arange(item_seq.size(1)) < lengths[:, None]
    pair_users = torch.cat([users[:, None].expand_as(item_seq)[real], users])
    pair_items = torch.cat([item_seq[real], inter[config["ITEM_ID_FIELD"]]])
    pairs = np.unique(np.stack([pair_users.numpy(), pair_items.numpy()], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _top_k(scores, k, exclude_rows):
    """Top-k columns of each row of a dense block, the row's own item excluded."""
    scores = scores.clone()
    scores[torch.arange(scores.size(0)), exclude_rows] = -torch.inf
    scores[:, 0] = -torch.inf  # the padding item is never correlated
    return scores.topk(k, dim=1)


def itemcf_iuf(users, items, n_items, k=1, chunk_size=2048):
    """ItemCF-IUF (Eq. 9) top-``k`` neighbours of every item.

    Returns ``(neighbours [n_items, k], scores [n_items, k], (min, max))`` where the
    scores are raw Eq. 9 values and ``(min, max)`` range over all pairs of distinct
    real items (ids 1 .. n_items - 1), a pair that never co-occurs scoring 0. An item
    with no co-occurring item (the padding item, items absent from training) has
    itself as neighbour with score ``-inf``.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    _, user_index = np.unique(users, return_inverse=True)
    n_users = int(user_index.max()) + 1 if len(users) else 0
    matrix = sp.csr_matrix(
        (np.ones(len(items)), (user_index, items)), shape=(n_users, n_items)
    )
    matrix.data[:] = 1.0  # distinct pairs: a repeated interaction counts once
    user_degree = np.asarray(matrix.sum(axis=1)).ravel()  # |N(u)|
    item_degree = np.asarray(matrix.sum(axis=0)).ravel()  # |N(i)|
    iuf = sp.diags(1.0 / np.log1p(np.maximum(user_degree, 1)))
    item_user = matrix.T.tocsr()
    weighted = (iuf @ matrix).tocsc()

    norm = np.sqrt(np.maximum(item_degree, 1))
    neighbours = torch.zeros(n_items, k, dtype=torch.long)
    scores = torch.full((n_items, k), -torch.inf, dtype=torch.float64)
    low, high, n_positive = np.inf, -np.inf, 0
    for start in range(0, n_items, chunk_size):
        stop = min(start + chunk_size, n_items)
        block = (item_user[start:stop] @ weighted).toarray()  # [chunk, n_items]
        block /= norm[start:stop, None] * norm[None, :]
        rows = np.arange(stop - start)
        block[rows, np.arange(start, stop)] = 0.0
        positive = block[block > 0]  # the padding item co-occurs with nothing
        if positive.size:
            low, high = min(low, positive.min()), max(high, positive.max())
            n_positive += positive.size
        block[block <= 0] = -np.inf
        values, index = _top_k(torch.from_numpy(block), k, torch.arange(start, stop))
        neighbours[start:stop] = index
        scores[start:stop] = values
    isolated = torch.isinf(scores)
    own = torch.arange(n_items)[:, None].expand(n_items, k)
    neighbours[isolated] = own[isolated]
    n_real = n_items - 1
    if n_positive < n_real * (n_real - 1):
        low = 0.0  # some pair of distinct real items never co-occurs
    bounds = (float(low), float(high)) if np.isfinite(high) else (0.0, 1.0)
    return neighbours, scores.float(), bounds


@torch.no_grad()
def embedding_top_k(embeddings, k=1, chunk_size=1024):
    """Model-based (Eq. 10) top-``k`` neighbours by dot product, batched on the device.

    ``embeddings`` is ``[n_items, H]`` with row 0 the padding item. Returns
    ``(neighbours [n_items, k], scores [n_items, k], (min, max))`` with ``(min, max)``
    over all pairs of distinct real items (no item with itself, no padding).
    """
    n_items = embeddings.size(0)
    neighbours = torch.zeros(n_items, k, dtype=torch.long, device=embeddings.device)
    scores = torch.zeros(n_items, k, device=embeddings.device)
    low, high = torch.inf, -torch.inf
    for start in range(0, n_items, chunk_size):
        stop = min(start + chunk_size, n_items)
        block = embeddings[start:stop] @ embeddings.t()  # [chunk, n_items]
        first = max(start, 1) - start  # rows of real items
        real = block[first:, 1:]
        if real.size(0) and real.size(1) > 1:
            # the item itself at column (row + first + start - 1) of ``real``
            rows = torch.arange(real.size(0), device=block.device)
            own = rows + first + start - 1
            low = min(
                low,
                real.index_put((rows, own), real.new_tensor(torch.inf)).min().item(),
            )
            high = max(
                high,
                real.index_put((rows, own), real.new_tensor(-torch.inf)).max().item(),
            )
        values, index = _top_k(block, k, torch.arange(start, stop, device=block.device))
        neighbours[start:stop] = index
        scores[start:stop] = values
    neighbours[0] = 0
    return neighbours, scores, (low, high)


def min_max(scores, bounds):
    low, high = bounds
    return (scores - low) / max(high - low, 1e-12)


class ItemCorrelation:
    """The correlated items of every item, for ``substitute`` and ``insert``.

    Starts memory-based (ItemCF-IUF); :meth:`refresh_model_based` switches it to the
    hybrid of Eq. 11. ``most_correlated`` returns, per item, one of its top-``k``
    correlated items drawn uniformly (``k = 1``, the default, is the paper's choice).
    The tables are tensors, moved with :meth:`to`.
    """

    def __init__(self, neighbours, scores, bounds, seed=0):
        self.memory_neighbours = neighbours  # [n_items, k]
        self.memory_scores = min_max(scores, bounds)  # normalised, -inf if none
        self.neighbours = neighbours  # the active table
        self.hybrid = False
        self.generator = None
        self.seed = seed

    @classmethod
    def from_pairs(cls, users, items, n_items, k=1, seed=0):
        return cls(*itemcf_iuf(users, items, n_items, k), seed=seed)

    @classmethod
    def from_dataset(cls, dataset, k=1, seed=0):
        """ItemCF-IUF from the training split ``dataset`` (no validation or test item)."""
        users, items = training_pairs(dataset)
        return cls.from_pairs(users, items, dataset.item_num, k, seed=seed)

    @property
    def k(self):
        return self.neighbours.size(1)

    @property
    def n_items(self):
        return self.neighbours.size(0)

    def to(self, device):
        self.memory_neighbours = self.memory_neighbours.to(device)
        self.memory_scores = self.memory_scores.to(device)
        self.neighbours = self.neighbours.to(device)
        return self

    def refresh_model_based(self, embeddings):
        """Use the hybrid correlation (Eq. 11) with the current ``embeddings``.

        ``embeddings`` is the item embedding table ``[n_items, H]``. Per item, the
        memory-based list is kept when its best normalised score is at least the
        model-based one, otherwise the model-based list is used.
        """
        device = self.memory_neighbours.device
        model_neighbours, model_scores, bounds = embedding_top_k(
            embeddings.detach().to(device), self.k
        )
        model_scores = min_max(model_scores, bounds)
        keep_memory = self.memory_scores[:, 0] >= model_scores[:, 0]
        self.neighbours = torch.where(
            keep_memory[:, None], self.memory_neighbours, model_neighbours
        )
        self.hybrid = True
        return keep_memory

    def use_memory_based(self):
        self.neighbours = self.memory_neighbours
        self.hybrid = False

    def most_correlated(self, items):
        """A correlated item for each of ``items`` (any shape), from the active table."""
        table = self.neighbours.to(items.device)
        if self.k == 1:
            return table[items, 0]
        if self.generator is None or self.generator.device != items.device:
            self.generator = torch.Generator(device=items.device)
            self.generator.manual_seed(self.seed)
        pick = torch.randint(
            self.k, items.shape, generator=self.generator, device=items.device
        )
        return table[items, pick]
