"""Item correlation: ItemCF-IUF on a hand-computed toy, the model-based part, the hybrid."""

import math

import numpy as np
import pytest
import torch

from recbole_ssl.config import Config
from recbole_ssl.data.correlation import (
    ItemCorrelation,
    embedding_top_k,
    itemcf_iuf,
    training_pairs,
)
from recbole_ssl.utils import create_dataset, data_preparation

# users: 0 -> {1, 2}, 1 -> {1, 2, 3}, 2 -> {3, 4}; item 2 is bought twice by user 0
TOY_USERS = [0, 0, 0, 1, 1, 1, 2, 2]
TOY_ITEMS = [1, 2, 2, 1, 2, 3, 3, 4]


def toy_scores():
    """Eq. 9 by hand: |N(1)| = |N(2)| = |N(3)| = 2, |N(4)| = 1; |N(u)| = 2, 3, 2."""
    s12 = (1 / math.log(3) + 1 / math.log(4)) / math.sqrt(2 * 2)  # users 0 and 1
    s13 = (1 / math.log(4)) / math.sqrt(2 * 2)  # user 1
    s23 = s13
    s34 = (1 / math.log(3)) / math.sqrt(2 * 1)  # user 2
    return s12, s13, s23, s34


def test_itemcf_iuf_matches_the_hand_computed_toy():
    s12, s13, s23, s34 = toy_scores()
    neighbours, scores, (low, high) = itemcf_iuf(TOY_USERS, TOY_ITEMS, 5, k=2)
    assert neighbours[1].tolist() == [2, 3]
    assert scores[1].tolist() == pytest.approx([s12, s13])
    assert neighbours[2].tolist() == [1, 3]
    assert scores[2].tolist() == pytest.approx([s12, s23])
    assert neighbours[3, 0].item() == 4 and scores[3, 0].item() == pytest.approx(s34)
    assert neighbours[4, 0].item() == 3 and scores[4, 0].item() == pytest.approx(s34)
    # item 4 has one co-occurring item: its second slot is itself, score -inf
    assert neighbours[4, 1].item() == 4 and scores[4, 1].item() == -math.inf
    # padding item 0: no neighbour
    assert neighbours[0].tolist() == [0, 0]
    # bounds over all 12 ordered pairs of distinct real items: (1, 4) and (2, 4)
    # never co-occur and score 0, the same population as the model-based bounds
    assert (low, high) == pytest.approx((0.0, max(s12, s34)))


def test_itemcf_iuf_bounds_when_every_pair_co_occurs():
    # one user with items 1, 2, 3: every pair co-occurs, so the minimum is positive
    _, _, (low, high) = itemcf_iuf([0, 0, 0], [1, 2, 3], 4)
    score = (1 / math.log(4)) / math.sqrt(1 * 1)
    assert (low, high) == pytest.approx((score, score))


def test_itemcf_iuf_is_the_same_in_any_chunking():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 400), rng.integers(1, 40, 400)
    whole = itemcf_iuf(users, items, 40, k=3)
    chunked = itemcf_iuf(users, items, 40, k=3, chunk_size=7)
    assert torch.equal(whole[1], chunked[1]) and whole[2] == pytest.approx(chunked[2])


def test_memory_correlation_picks_the_top_neighbour():
    correlation = ItemCorrelation.from_pairs(TOY_USERS, TOY_ITEMS, 5)
    items = torch.tensor([[1, 2], [4, 0]])
    assert correlation.most_correlated(items).tolist() == [[2, 1], [3, 0]]
    assert not correlation.hybrid


def test_top_k_draws_stay_within_the_top_k():
    correlation = ItemCorrelation.from_pairs(TOY_USERS, TOY_ITEMS, 5, k=2, seed=3)
    drawn = correlation.most_correlated(torch.ones(200, dtype=torch.long))
    assert set(drawn.tolist()) == {2, 3}


def test_training_pairs_hold_no_validation_or_test_item(tiny_config):
    for train_mode in ("sequence", "prefix"):
        config = Config(
            "CoSeRec", "tiny", config_dict=dict(tiny_config, train_mode=train_mode)
        )
        dataset = create_dataset(config)
        # every interaction, before the split (a DataFrame until then)
        inter = {k: dataset.inter_feat[k].to_numpy() for k in ("user_id", "item_id")}
        inter["timestamp"] = dataset.inter_feat["timestamp"].to_numpy()
        train_data, _, _ = data_preparation(config, dataset)
        users, items = training_pairs(train_data._dataset)
        got = set(zip(users.tolist(), items.tolist(), strict=True))
        order = np.lexsort((inter["timestamp"], inter["user_id"]))
        by_user = {}
        for user, item in zip(
            inter["user_id"][order], inter["item_id"][order], strict=True
        ):
            by_user.setdefault(int(user), []).append(int(item))
        expected = set()
        for user, items_of_user in by_user.items():  # all but validation and test
            expected |= {(user, item) for item in items_of_user[:-2]}
        assert got == expected, train_mode


@pytest.fixture
def embeddings():
    return torch.randn(30, 8, generator=torch.Generator().manual_seed(0))


def test_model_based_top_k_is_the_dot_product_top_k(embeddings):
    neighbours, scores, (low, high) = embedding_top_k(embeddings, k=3, chunk_size=7)
    full = embeddings @ embeddings.t()
    distinct = ~torch.eye(29, dtype=torch.bool)  # real items, each without itself
    real = full[1:, 1:][distinct]
    assert (low, high) == pytest.approx((real.min().item(), real.max().item()))
    for item in range(1, 30):
        row = full[item].clone()
        row[item] = row[0] = -math.inf
        assert neighbours[item].tolist() == row.topk(3).indices.tolist()
        assert scores[item].tolist() == pytest.approx(row.topk(3).values.tolist())


def test_hybrid_takes_the_higher_normalised_score_per_item(embeddings):
    # memory-based: item i's neighbour is i + 1 with normalised score i / 29
    n_items = 30
    neighbours = (torch.arange(n_items) % (n_items - 1) + 1)[:, None]
    raw = torch.arange(n_items, dtype=torch.float)[:, None]
    correlation = ItemCorrelation(neighbours, raw, (0.0, 29.0))
    keep_memory = correlation.refresh_model_based(embeddings)
    model_neighbours, model_scores, bounds = embedding_top_k(embeddings)
    model_normalised = (model_scores[:, 0] - bounds[0]) / (bounds[1] - bounds[0])
    expected_keep = raw[:, 0] / 29 >= model_normalised
    assert torch.equal(keep_memory, expected_keep)
    assert 0 < expected_keep.sum() < n_items  # both sources are used
    items = torch.arange(1, n_items)
    expected = torch.where(
        expected_keep[1:], neighbours[1:, 0], model_neighbours[1:, 0]
    )
    assert correlation.hybrid
    assert torch.equal(correlation.most_correlated(items), expected)
    correlation.use_memory_based()
    assert torch.equal(correlation.most_correlated(items), neighbours[1:, 0])


def test_hybrid_by_hand_on_one_scale():
    """Eqs. 9-11 on the toy, every value computed here, not by the module.

    Embeddings: e1 = (2, 0), e2 = (0, 1), e3 = (1, 1), e4 = (0, -1). Dot products of
    distinct items: 1.2 = 0, 1.3 = 2, 1.4 = 0, 2.3 = 1, 2.4 = -1, 3.4 = -1, so the
    model-based bounds are (-1, 2) (with each item's own product they would reach 4).
    Best model-based neighbours: 1 -> 3 (2), 2 -> 3 (1), 3 -> 1 (2), 4 -> 1 (0),
    normalised (s + 1) / 3: 1, 2/3, 1, 1/3.
    Memory-based (Eq. 9, bounds (0, s12)): 1 -> 2 and 2 -> 1 (s12, normalised 1),
    3 -> 4 and 4 -> 3 (s34 / s12 = 0.789).
    Eq. 11 keeps the memory neighbour where its score is at least the model's: items
    1, 2, 4; item 3 takes its model neighbour, 1. (With the diagonal in the model
    bounds and co-occurring pairs only in the memory bounds, item 3 would compare
    0.62 with 0.6 and keep 4.)
    """
    s12, _, _, s34 = toy_scores()
    assert s34 / s12 == pytest.approx(0.789, abs=1e-3)
    correlation = ItemCorrelation.from_pairs(TOY_USERS, TOY_ITEMS, 5)
    assert correlation.memory_scores[1:, 0].tolist() == pytest.approx(
        [1.0, 1.0, s34 / s12, s34 / s12]
    )
    embeddings = torch.tensor([[0.0, 0.0], [2, 0], [0, 1], [1, 1], [0, -1]])
    keep_memory = correlation.refresh_model_based(embeddings)
    assert keep_memory[1:].tolist() == [True, True, False, True]
    items = torch.tensor([1, 2, 3, 4])
    assert correlation.most_correlated(items).tolist() == [2, 1, 1, 3]
