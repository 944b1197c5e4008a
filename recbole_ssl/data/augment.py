"""recbole_ssl.data.augment: sequence augmentations for contrastive learning.

The five operators of CoSeRec (Liu et al., 2021, Sec. 4.1), over a batch of
right-padded item sequences ``seq`` ([B, L], padding id 0) and their lengths ``lengths``
([B]). Each returns a new ``(seq, lengths)`` pair and never writes into its input, so
the stored training data is never changed.

With ``n`` a sequence's length:

* ``crop`` keeps a random contiguous window of ``ceil(eta * n)`` items (Eq. 4);
* ``mask`` replaces ``ceil(gamma * n)`` random items by the mask token (Eq. 5);
* ``reorder`` shuffles a random contiguous window of ``ceil(beta * n)`` items (Eq. 6);
* ``substitute`` replaces ``ceil(alpha * n)`` random items by a correlated item (Eq. 7);
* ``insert`` puts a correlated item before each of ``ceil(ratio * n)`` random items
  (Eq. 8) and keeps the most recent ``L`` items.

Counts are at least 1 for crop (a view is never empty) and at most ``n``. The
correlated items come from a :class:`recbole_ssl.data.correlation.ItemCorrelation`.
:class:`SequenceAugmenter` draws one operator per sequence from a length-aware set
(Eq. 12) and applies every operator to its rows at once, with its own seeded generator.
"""

import torch

from recbole_ssl.errors import ConfigError, check_integer, check_number

OPERATORS = ("crop", "mask", "reorder", "substitute", "insert")
CORRELATED_OPERATORS = ("substitute", "insert")


def augment_counts(lengths, ratio, minimum=0):
    """``ceil(ratio * n)`` per sequence, clamped to ``[minimum, n]``.  # [B]

    Computed in float64 with a small tolerance, so ``ceil(0.7 * 10)`` is 7, not 8.
    """
    counts = torch.ceil(lengths.double() * ratio - 1e-9).long()
    return torch.minimum(counts.clamp(min=minimum), lengths)


def _uniform(shape, generator, device):
    return torch.rand(shape, generator=generator, device=device)


def _random_starts(lengths, window, generator):
    """A uniform start in ``[0, n - window]`` per sequence.  # [B]"""
    span = (lengths - window + 1).double()
    draw = _uniform(lengths.shape, generator, lengths.device).double()
    return torch.minimum((draw * span).long(), lengths - window)


def _choose_positions(lengths, counts, width, generator):
    """A mask of ``counts`` distinct random real positions per sequence.  # [B, L]"""
    positions = torch.arange(width, device=lengths.device)
    real = positions < lengths[:, None]
    keys = _uniform((lengths.size(0), width), generator, lengths.device)
    keys = keys.masked_fill(~real, 2.0)  # padding sorts last
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


def crop(seq, lengths, eta, generator=None):
    """Keep a random contiguous window of ``ceil(eta * n)`` items (at least one)."""
    width = seq.size(1)
    new_lengths = augment_counts(lengths, eta, minimum=1)
    starts = _random_starts(lengths, new_lengths, generator)
    positions = torch.arange(width, device=seq.device)
    index = (starts[:, None] + positions).clamp(max=width - 1)
    cropped = seq.gather(1, index)
    return cropped.masked_fill(positions >= new_lengths[:, None], 0), new_lengths


def mask(seq, lengths, gamma, mask_token, generator=None):
    """Replace ``ceil(gamma * n)`` random items by ``mask_token``."""
    chosen = _choose_positions(
        lengths, augment_counts(lengths, gamma), seq.size(1), generator
    )
    return seq.masked_fill(chosen, mask_token), lengths.clone()


def reorder(seq, lengths, beta, generator=None):
    """Shuffle a random contiguous window of ``ceil(beta * n)`` items."""
    width = seq.size(1)
    window = augment_counts(lengths, beta)
    starts = _random_starts(lengths, window, generator)
    positions = torch.arange(width, device=seq.device)
    inside = (positions >= starts[:, None]) & (positions < (starts + window)[:, None])
    # items outside the window keep their position as sort key; items inside get a
    # random key within [start, start + window), so sorting shuffles only the window
    keys = positions.double().expand(seq.size(0), width)
    draw = _uniform((seq.size(0), width), generator, seq.device).double()
    shuffled = starts[:, None].double() + draw * (window[:, None].double() - 1e-6)
    keys = torch.where(inside, shuffled, keys)
    return seq.gather(1, keys.argsort(dim=1, stable=True)), lengths.clone()


def substitute(seq, lengths, alpha, correlated, generator=None):
    """Replace ``ceil(alpha * n)`` random items by ``correlated(items)``."""
    chosen = _choose_positions(
        lengths, augment_counts(lengths, alpha), seq.size(1), generator
    )
    new_seq = seq.clone()
    new_seq[chosen] = correlated(seq[chosen])
    return new_seq, lengths.clone()


def insert(seq, lengths, ratio, correlated, generator=None):
    """Insert ``correlated(item)`` before each of ``ceil(ratio * n)`` random items.

    The result has ``n + ceil(ratio * n)`` items, of which the most recent ``L`` are kept.
    """
    batch, width = seq.shape
    counts = augment_counts(lengths, ratio)
    chosen = _choose_positions(lengths, counts, width, generator)
    inserted_before = chosen.long().cumsum(dim=1)  # inserts at or before each position
    positions = torch.arange(width, device=seq.device)
    real = positions < lengths[:, None]
    item_slot = positions + inserted_before  # where each original item lands  # [B, L]
    rows = torch.arange(batch, device=seq.device)[:, None].expand(batch, width)
    expanded = seq.new_zeros(batch, 2 * width)
    expanded[rows[real], item_slot[real]] = seq[real]
    extra = chosen & real
    expanded[rows[extra], item_slot[extra] - 1] = correlated(seq[extra])
    total = lengths + counts
    shift = (total - width).clamp(min=0)  # drop the oldest items beyond L
    kept = expanded.gather(1, shift[:, None] + positions)
    return kept, total - shift


def _rank_seed(config):
    """RecBole's seed plus the process rank, as RecBole seeds each rank."""
    rank = config["local_rank"] if "local_rank" in config else 0
    return (config["seed"] or 0) + (rank or 0)


class SequenceAugmenter:
    """Draws one augmentation operator per sequence and applies it (CoSeRec Eq. 12).

    Sequences of length ``<= threshold`` draw uniformly from ``short_operators``, longer
    ones from ``long_operators``. ``correlation`` (an object with ``most_correlated``)
    is needed only when a set holds ``substitute`` or ``insert``; it may be attached
    later with :meth:`set_correlation`. ``seed`` seeds the augmenter's own generator,
    created on the device of the first batch.
    """

    def __init__(
        self,
        mask_token,
        crop_ratio=0.2,
        mask_ratio=0.7,
        reorder_ratio=0.2,
        substitute_ratio=0.1,
        insert_ratio=0.4,
        short_operators=OPERATORS,
        long_operators=OPERATORS,
        threshold=1,
        correlation=None,
        seed=0,
    ):
        self.ratios = {
            "crop": crop_ratio,
            "mask": mask_ratio,
            "reorder": reorder_ratio,
            "substitute": substitute_ratio,
            "insert": insert_ratio,
        }
        for name, ratio in self.ratios.items():
            check_number(f"{name}_ratio", ratio, 0, high=1)
        self.short_operators = self._check_operators(
            "short_augmentations", short_operators
        )
        self.long_operators = self._check_operators(
            "long_augmentations", long_operators
        )
        check_integer("augment_threshold", threshold, 1)
        self.threshold = threshold
        self.mask_token = mask_token
        self.correlation = correlation
        self.seed = seed
        self.generator = None

    @classmethod
    def from_config(cls, config, mask_token, correlation=None):
        """Build from the config keys of ``CL4SRec.yaml`` / ``CoSeRec.yaml``."""
        return cls(
            mask_token,
            crop_ratio=config["crop_ratio"],
            mask_ratio=config["mask_ratio"],
            reorder_ratio=config["reorder_ratio"],
            substitute_ratio=config["substitute_ratio"],
            insert_ratio=config["insert_ratio"],
            short_operators=config["short_augmentations"],
            long_operators=config["long_augmentations"],
            threshold=config["augment_threshold"],
            correlation=correlation,
            seed=_rank_seed(config),
        )

    @staticmethod
    def _check_operators(key, operators):
        if isinstance(operators, str) or not operators:
            raise ConfigError(
                f"{key} must be a non-empty list of operators from {list(OPERATORS)}, "
                f"got {operators!r}"
            )
        unknown = [name for name in operators if name not in OPERATORS]
        if unknown:
            raise ConfigError(
                f"{key} has unknown operator(s) {unknown}; choose from {list(OPERATORS)}"
            )
        return tuple(operators)

    @property
    def needs_correlation(self):
        """Whether any operator set holds ``substitute`` or ``insert``."""
        used = set(self.short_operators) | set(self.long_operators)
        return bool(used & set(CORRELATED_OPERATORS))

    def set_correlation(self, correlation):
        self.correlation = correlation

    def _generator(self, device):
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed)
        return self.generator

    def apply(self, name, seq, lengths, generator=None):
        """Apply operator ``name`` to every sequence of the batch."""
        ratio = self.ratios[name]
        if name == "crop":
            return crop(seq, lengths, ratio, generator)
        if name == "mask":
            return mask(seq, lengths, ratio, self.mask_token, generator)
        if name == "reorder":
            return reorder(seq, lengths, ratio, generator)
        if self.correlation is None:
            raise RuntimeError(
                f"the '{name}' augmentation needs an item correlation; the model's "
                "trainer attaches one before training (set_correlation)"
            )
        operator = substitute if name == "substitute" else insert
        return operator(
            seq, lengths, ratio, self.correlation.most_correlated, generator
        )

    def choose_operators(self, lengths, generator=None):
        """The index into :data:`OPERATORS` of each sequence's operator.  # [B]"""
        device = lengths.device
        draw = _uniform(lengths.shape, generator, device)
        chosen = []
        for operators in (self.short_operators, self.long_operators):
            codes = torch.tensor([OPERATORS.index(n) for n in operators], device=device)
            pick = (draw * len(codes)).long().clamp(max=len(codes) - 1)
            chosen.append(codes[pick])
        return torch.where(lengths <= self.threshold, chosen[0], chosen[1])

    def __call__(self, seq, lengths):
        """One augmented view of every sequence: ``(seq, lengths)``, new tensors."""
        generator = self._generator(seq.device)
        operators = self.choose_operators(lengths, generator)
        new_seq = torch.zeros_like(seq)
        new_lengths = torch.zeros_like(lengths)
        for code, name in enumerate(OPERATORS):
            rows = (operators == code).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            part_seq, part_lengths = self.apply(
                name, seq[rows], lengths[rows], generator
            )
            new_seq[rows] = part_seq
            new_lengths[rows] = part_lengths
        return new_seq, new_lengths
