"""Sequence augmentations: exact small cases, input never changed, seeded, bad config."""

import pytest
import torch

from recbole_ssl.data.augment import (
    OPERATORS,
    SequenceAugmenter,
    augment_counts,
    crop,
    insert,
    mask,
    reorder,
    substitute,
)
from recbole_ssl.utils import ConfigError

MASK = 99
WIDTH = 12


def batch():
    """Two right-padded sequences, lengths 10 and 3 (items < 100)."""
    seq = torch.zeros(2, WIDTH, dtype=torch.long)
    seq[0, :10] = torch.arange(1, 11)
    seq[1, :3] = torch.tensor([11, 12, 13])
    return seq, torch.tensor([10, 3])


def correlated(items):
    return items + 100  # every item's correlated item, recognisable


def rows(seq, lengths):
    return [seq[i, : lengths[i]].tolist() for i in range(len(lengths))]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_counts_use_ceil_without_float_error():
    lengths = torch.tensor([10, 3, 1, 5])
    assert augment_counts(lengths, 0.7).tolist() == [7, 3, 1, 4]
    assert augment_counts(lengths, 0.2).tolist() == [2, 1, 1, 1]
    assert augment_counts(lengths, 0.0).tolist() == [0, 0, 0, 0]
    assert augment_counts(lengths, 0.0, minimum=1).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "eta, expected", [(0.2, [2, 1]), (0.6, [6, 2]), (1.0, [10, 3])]
)
def test_crop_keeps_a_contiguous_window(eta, expected):
    seq, lengths = batch()
    original = rows(seq, lengths)
    for seed in range(20):
        new_seq, new_lengths = crop(seq, lengths, eta, generator(seed))
        assert new_lengths.tolist() == expected
        for row, items, n in zip(
            rows(new_seq, new_lengths), original, expected, strict=True
        ):
            windows = [items[s : s + n] for s in range(len(items) - n + 1)]
            assert row in windows
        assert (new_seq[torch.arange(WIDTH) >= new_lengths[:, None]] == 0).all()


def test_crop_reaches_every_window_including_the_last():
    seq, lengths = batch()
    starts = set()
    for seed in range(200):
        new_seq, _ = crop(seq, lengths, 0.2, generator(seed))
        starts.add(new_seq[0, 0].item() - 1)
    assert starts == set(range(9))  # 10 items, window 2: starts 0..8


def test_mask_replaces_exactly_ceil_gamma_n_items_by_the_mask_token():
    seq, lengths = batch()
    new_seq, new_lengths = mask(seq, lengths, 0.7, MASK, generator())
    assert new_lengths.tolist() == [10, 3]
    masked = new_seq == MASK
    assert masked.sum(1).tolist() == [7, 3]
    assert (new_seq[~masked] == seq[~masked]).all()  # the rest, padding included
    assert (new_seq[:, 10:] == 0).all()


def test_reorder_shuffles_one_window_only():
    seq, lengths = batch()
    changed_any = False
    for seed in range(20):
        new_seq, new_lengths = reorder(seq, lengths, 0.5, generator(seed))
        assert new_lengths.tolist() == [10, 3]
        new, old = new_seq[0, :10], seq[0, :10]
        assert sorted(new.tolist()) == old.tolist()
        moved = (new != old).nonzero().flatten()
        if len(moved):
            changed_any = True
            assert moved.max() - moved.min() < 5  # inside one window of ceil(0.5 * 10)
        assert sorted(new_seq[1, :3].tolist()) == [11, 12, 13]
        assert (new_seq[:, 10:] == 0).all()
    assert changed_any


def test_substitute_replaces_ceil_alpha_n_items_by_correlated_ones():
    seq, lengths = batch()
    new_seq, new_lengths = substitute(seq, lengths, 0.2, correlated, generator())
    assert new_lengths.tolist() == [10, 3]
    changed = new_seq != seq
    assert changed.sum(1).tolist() == [2, 1]
    assert (new_seq[changed] == seq[changed] + 100).all()


def test_insert_puts_a_correlated_item_before_chosen_items():
    seq, lengths = batch()
    new_seq, new_lengths = insert(seq, lengths, 0.5, correlated, generator())
    # row 1: 3 items + ceil(1.5) = 2 inserts; fits
    assert new_lengths[1].item() == 5
    row = new_seq[1, :5].tolist()
    assert [item for item in row if item < 100] == [11, 12, 13]
    for position, item in enumerate(row):
        if item >= 100:
            assert row[position + 1] == item - 100
    # row 0: 10 + 5 = 15 items, truncated to the most recent 12
    assert new_lengths[0].item() == WIDTH
    row = new_seq[0].tolist()
    assert row[-1] == 10 and sum(item >= 100 for item in row) in (2, 3, 4, 5)
    originals = [item for item in row if item < 100]
    assert originals == list(range(11 - len(originals), 11))  # a suffix, in order
    for position, item in enumerate(row):
        if item >= 100:
            assert row[position + 1] == item - 100


def test_insert_with_ratio_one_doubles_each_item():
    seq, lengths = batch()
    new_seq, new_lengths = insert(seq, lengths, 1.0, correlated, generator())
    assert rows(new_seq, new_lengths)[1] == [111, 11, 112, 12, 113, 13]
    assert rows(new_seq, new_lengths)[0] == [
        105,
        5,
        106,
        6,
        107,
        7,
        108,
        8,
        109,
        9,
        110,
        10,
    ]


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_never_change_their_input(name):
    seq, lengths = batch()
    seq_before, lengths_before = seq.clone(), lengths.clone()
    augmenter = SequenceAugmenter(MASK, correlation=Correlated(), threshold=3)
    augmenter.apply(name, seq, lengths, generator())
    assert torch.equal(seq, seq_before) and torch.equal(lengths, lengths_before)


class Correlated:
    def most_correlated(self, items):
        return correlated(items)


def test_augmenter_draws_from_the_set_for_each_length():
    seq, lengths = batch()  # lengths 10 (long) and 3 (short) with threshold 5
    augmenter = SequenceAugmenter(
        MASK,
        mask_ratio=1.0,
        short_operators=["mask"],
        long_operators=["insert"],
        insert_ratio=0.1,
        threshold=5,
        correlation=Correlated(),
    )
    seq_before = seq.clone()
    new_seq, new_lengths = augmenter(seq, lengths)
    assert torch.equal(seq, seq_before)
    assert new_seq[1, :3].tolist() == [MASK] * 3 and new_lengths[1] == 3
    assert new_lengths[0] == 11 and (new_seq[0] >= 100).sum() == 1


def test_a_sequence_of_exactly_the_threshold_length_is_short():
    # CoSeRec Eq. 12: |s| <= K draws from the short set, |s| > K from the long one
    augmenter = SequenceAugmenter(
        MASK, short_operators=["mask"], long_operators=["crop"], threshold=5
    )
    codes = augmenter.choose_operators(torch.tensor([1, 4, 5, 6, 50]), generator())
    names = [OPERATORS[c] for c in codes.tolist()]
    assert names == ["mask", "mask", "mask", "crop", "crop"]


def test_augmenter_uses_every_operator_of_a_set():
    seq = torch.arange(1, 21).repeat(400, 1)
    lengths = torch.full((400,), 20)
    augmenter = SequenceAugmenter(
        MASK,
        short_operators=["crop"],
        long_operators=["crop", "mask"],
        threshold=12,
    )
    new_seq, new_lengths = augmenter(seq, lengths)
    cropped = new_lengths == 4
    masked = (new_seq == MASK).any(1)
    assert (cropped ^ masked).all()  # each row got exactly one of the two
    assert 150 < cropped.sum() < 250


def test_augmenter_is_seeded():
    seq, lengths = batch()
    seq, lengths = seq.repeat(8, 1), lengths.repeat(8)

    def views(seed):
        augmenter = SequenceAugmenter(MASK, correlation=Correlated(), seed=seed)
        return [augmenter(seq, lengths)[0] for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(views(1), views(1), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(views(1), views(2), strict=True))


def test_correlated_operator_without_correlation_fails_clearly():
    seq, lengths = batch()
    augmenter = SequenceAugmenter(MASK, short_operators=["substitute"], threshold=20)
    with pytest.raises(RuntimeError, match="substitute.*item correlation"):
        augmenter(seq, lengths)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_ratio": 1.5}, "mask_ratio must be a number in \\[0, 1\\], got 1.5"),
        ({"crop_ratio": -0.1}, "crop_ratio must be a number in \\[0, 1\\]"),
        ({"insert_ratio": "half"}, "insert_ratio must be a number"),
        ({"short_operators": ["crop", "shuffle"]}, "short_augmentations.*'shuffle'"),
        ({"long_operators": "crop"}, "long_augmentations must be a non-empty list"),
        ({"long_operators": []}, "long_augmentations must be a non-empty list"),
        ({"threshold": 0}, "augment_threshold must be an integer >= 1, got 0"),
    ],
)
def test_bad_settings_fail_with_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SequenceAugmenter(MASK, **kwargs)
