"""recbole_ssl.model.negatives: negatives for the sampled next-item losses (BCE, BPR,
and the sampled softmax SSM).

The papers' code trains with one negative per scored position, drawn uniformly from
the items the user has not interacted with (the authors' ``neg_sample``: redraw while
the item is in the user's set). :class:`NegativeSampler` does that for a whole batch
on tensors: each user's training items are kept as sorted keys ``user * n_items +
item``, a draw is checked against them with one ``searchsorted``, and only the draws
that hit a training item are drawn again. Its generator is seeded from RecBole's
``seed`` (plus the rank) and is part of a run's random state, so draws repeat with the
seed and a resumed run draws on where it stopped.
"""

import torch

from recbole_ssl.errors import ConfigError

MAX_REDRAWS = 1000  # rounds; each keeps a draw with probability >= 1 / n_items


def training_pairs(dataset):
    """``(users, items)``: every (user, item) pair of RecBole's training split of a
    sequential model (repeats possible): each row's target and every item the user had
    before it (the plugin's dataset keeps whole histories; else the row's input
    sequence, which ``MAX_ITEM_LIST_LENGTH`` may have cut)."""
    feat = dataset.inter_feat
    users, targets = feat[dataset.uid_field], feat[dataset.iid_field]
    history = getattr(dataset, "history_before_targets", lambda: None)()
    if history is not None:
        row_ptr, items = history
        counts = torch.from_numpy(row_ptr[1:] - row_ptr[:-1])
        before_users = torch.repeat_interleave(users, counts)
        before_items = torch.from_numpy(items)
    else:
        sequences = feat[dataset.iid_field + dataset.config["LIST_SUFFIX"]]
        before_users = users[:, None].expand_as(sequences).reshape(-1)
        before_items = sequences.reshape(-1)
    return (
        torch.cat([before_users, users]).long(),
        torch.cat([before_items.long(), targets.long()]),
    )


class SeededSampler:
    """A sampler's own ``torch.Generator`` (``generator``, part of a run's random
    state), seeded from ``seed`` and created on the device of the first draw."""

    def _generator(self, device):
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed)
        return self.generator


class NegativeSampler(SeededSampler):
    """Uniform negatives over real items ``1 .. n_items - 1``, none of them one of the
    user's training items.

    Args:
        users, items: the training part's (user, item) pairs (any order, repeats
            allowed; padding item 0 is ignored).
        n_items: the dataset's item count, padding included.
        seed: seeds the sampler's own generator, created on the first batch's device.
    """

    def __init__(self, users, items, n_items, seed=0):
        self.n_items = int(n_items)
        users, items = users.reshape(-1).long(), items.reshape(-1).long()
        real = items > 0
        self.keys = torch.unique(users[real] * self.n_items + items[real])  # sorted
        counts = torch.bincount(
            torch.div(self.keys, self.n_items, rounding_mode="floor")
        )
        if counts.numel() and int(counts.max()) >= self.n_items - 1:
            user = int(counts.argmax())
            raise ConfigError(
                f"loss_type: user {user} has interacted with every item, so no "
                "negative item can be drawn for it"
            )
        self.seed = seed
        self.generator = None

    @classmethod
    def from_dataset(cls, dataset, seed=0):
        """From RecBole's training split of a sequential model (see
        :func:`training_pairs`)."""
        users, items = training_pairs(dataset)
        return cls(users, items, dataset.item_num, seed=seed)

    @classmethod
    def for_rank(cls, dataset, config):
        """:meth:`from_dataset`, seeded from RecBole's ``seed`` plus the process's
        rank (``local_rank``; 0 in one process), so ranks draw apart."""
        rank = config["local_rank"] if "local_rank" in config else 0
        return cls.from_dataset(dataset, seed=(config["seed"] or 0) + (rank or 0))

    def to(self, device):
        self.keys = self.keys.to(device)
        return self

    def interacted(self, users, items):
        """Whether each ``items[i]`` is one of ``users[i]``'s training items (any shape)."""
        keys = users * self.n_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        at = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        return self.keys[at] == keys

    def sample(self, users, num=1):
        """``num`` negatives for each of ``users`` (``[N]``)  # [N, num]"""
        device = users.device
        if self.keys.device != device:
            self.to(device)
        generator = self._generator(device)
        users = users.long()[:, None].expand(-1, num)
        items = torch.randint(
            1, self.n_items, users.shape, generator=generator, device=device
        )
        redraw = self.interacted(users, items).nonzero(as_tuple=True)
        for _ in range(MAX_REDRAWS):
            if redraw[0].numel() == 0:
                return items
            fresh = torch.randint(
                1, self.n_items, redraw[0].shape, generator=generator, device=device
            )
            items[redraw] = fresh
            still = self.interacted(users[redraw], fresh)
            redraw = tuple(index[still] for index in redraw)
        raise RuntimeError(f"no negative found in {MAX_REDRAWS} draws")


SSM_DISTRIBUTIONS = ("uniform", "popularity")


class SharedNegativeSampler(SeededSampler):
    """The sampled softmax's negatives (``loss_type: SSM``): ``num`` items per batch,
    shared by every scored position of it, drawn with replacement from the real items
    ``1 .. n_items - 1``, uniformly or in proportion to their popularity (the number of
    distinct users with the item in the training part; an item no one had in training
    is never drawn). :meth:`log_q` gives the log-probability of drawing an item, for
    the logQ correction of the scores.

    Its generator is seeded from RecBole's ``seed`` alone, not the rank: in a
    distributed run every rank draws the same items for the same batch, so the
    negatives are shared across the global batch, as in one process.

    Args:
        users, items: the training part's (user, item) pairs (as
            :func:`training_pairs`; only used for ``popularity``).
        n_items: the dataset's item count, padding included.
        distribution: ``uniform`` or ``popularity``.
        seed: seeds the sampler's own generator, created on the first batch's device.
    """

    def __init__(self, users, items, n_items, distribution="uniform", seed=0):
        self.n_items = int(n_items)
        self.distribution = distribution
        if distribution == "popularity":
            users, items = users.reshape(-1).long(), items.reshape(-1).long()
            real = items > 0
            keys = torch.unique(users[real] * self.n_items + items[real])
            counts = torch.bincount(keys % self.n_items, minlength=self.n_items)
            counts[0] = 0  # never the padding
            if counts.sum() == 0:
                raise ConfigError(
                    "ssm_distribution: 'popularity' needs training interactions, "
                    "the training part has none"
                )
            self.probabilities = counts.double() / counts.sum()
        else:
            self.probabilities = torch.full((self.n_items,), 1.0 / (self.n_items - 1))
            self.probabilities[0] = 0.0
        self.seed = seed
        self.generator = None

    @classmethod
    def from_dataset(cls, dataset, distribution="uniform", seed=0):
        users, items = training_pairs(dataset)
        return cls(users, items, dataset.item_num, distribution, seed)

    def sample(self, num, device):
        """``num`` item ids, with replacement  # [num]"""
        if self.probabilities.device != device:
            self.probabilities = self.probabilities.to(device)
        generator = self._generator(device)
        if self.distribution == "uniform":
            return torch.randint(
                1, self.n_items, (num,), generator=generator, device=device
            )
        return torch.multinomial(
            self.probabilities, num, replacement=True, generator=generator
        )

    def log_q(self, items):
        """``log P(draw = item)`` of each of ``items`` (any shape; float32)."""
        if self.probabilities.device != items.device:
            self.probabilities = self.probabilities.to(items.device)
        return self.probabilities[items].log().float()
