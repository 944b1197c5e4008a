"""NT-Xent against a slow reference loop and a hand-computed case; sequence vectors."""

import math

import pytest
import torch

from recbole_ssl.model.losses import (
    concat_gram,
    intent_nce,
    nt_xent,
    nt_xent_from_similarity,
    sequence_representation,
    similarity_matrix,
)


def reference_nt_xent(view1, view2, temperature, similarity):
    """Eq. 14 anchor by anchor, as written: 1/2N sum over the 2N anchors."""
    views = list(view1) + list(view2)
    n = len(view1)

    def sim(a, b):
        if similarity == "cos":
            return float(a @ b / (a.norm() * b.norm())) / temperature
        return float(a @ b) / temperature

    total = 0.0
    for anchor in range(2 * n):
        partner = anchor + n if anchor < n else anchor - n
        denominator = sum(
            math.exp(sim(views[anchor], views[m])) for m in range(2 * n) if m != anchor
        )
        total += -math.log(math.exp(sim(views[anchor], views[partner])) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("similarity", ["dot", "cos"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_nt_xent_equals_the_reference_loop(similarity, temperature):
    generator = torch.Generator().manual_seed(0)
    view1 = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    view2 = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    loss = nt_xent(view1, view2, temperature, similarity)
    assert loss.item() == pytest.approx(
        reference_nt_xent(view1, view2, temperature, similarity)
    )


def test_nt_xent_hand_computed():
    # two orthonormal pairs: each anchor scores 1 with its partner, 0 with the others
    view = torch.eye(2)
    expected = -math.log(math.e / (math.e + 2))
    assert nt_xent(view, view.clone()).item() == pytest.approx(expected)
    # a single pair has no negative: the loss is 0
    assert nt_xent(torch.ones(1, 3), torch.ones(1, 3)).item() == pytest.approx(0.0)


def test_nt_xent_gradients_reach_both_views():
    view1 = torch.randn(4, 3, requires_grad=True)
    view2 = torch.randn(4, 3, requires_grad=True)
    nt_xent(view1, view2).backward()
    assert view1.grad.abs().sum() > 0 and view2.grad.abs().sum() > 0


def test_nt_xent_rejects_an_unknown_similarity():
    with pytest.raises(ValueError, match="unknown similarity 'l2'"):
        nt_xent(torch.ones(2, 2), torch.ones(2, 2), similarity="l2")


def outputs():
    """[B=2, L=3, H=2]: position p of row b holds (10 b + p, -(10 b + p))."""
    values = torch.tensor([[0.0, 1, 2], [10, 11, 12]])
    return torch.stack([values, -values], dim=-1), torch.tensor([2, 3])


def test_concat_aligns_on_the_most_recent_item_and_zeroes_padding():
    output, lengths = outputs()
    rep = sequence_representation(output, lengths, "concat")
    assert rep.tolist() == [[1, -1, 0, 0, 0, 0], [12, -12, 11, -11, 10, -10]]


def test_mean_and_last_use_real_positions_only():
    output, lengths = outputs()
    assert sequence_representation(output, lengths, "mean").tolist() == [
        [0.5, -0.5],
        [11, -11],
    ]
    assert sequence_representation(output, lengths, "last").tolist() == [
        [1, -1],
        [12, -12],
    ]


def test_concat_gram_equals_the_dense_product():
    generator = torch.Generator().manual_seed(0)
    output = torch.randn(40, 50, 4, generator=generator, dtype=torch.float64)
    lengths = torch.randint(1, 51, (40,), generator=generator)
    lengths[:3] = torch.tensor([8, 9, 50])  # band edges
    dense = sequence_representation(output, lengths, "concat")
    assert torch.allclose(concat_gram(output, lengths), dense @ dense.t())


@pytest.mark.parametrize("similarity", ["dot", "cos"])
def test_nt_xent_from_a_gram_matrix_equals_nt_xent(similarity):
    generator = torch.Generator().manual_seed(1)
    views = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    from_gram = nt_xent_from_similarity(
        similarity_matrix(views @ views.t(), similarity) / 0.5
    )
    assert from_gram.item() == pytest.approx(
        nt_xent(views[:3], views[3:], 0.5, similarity).item()
    )


def reference_intent_nce(views, intents, intent_ids, temperature, fnm):
    """Eq. 17 anchor by anchor."""
    total = 0.0
    n = len(views)
    for u in range(n):
        scores = [float(views[u] @ intents[v]) / temperature for v in range(n)]
        keep = [
            v for v in range(n) if v == u or not fnm or intent_ids[v] != intent_ids[u]
        ]
        denominator = sum(math.exp(scores[v]) for v in keep)
        total += -math.log(math.exp(scores[u]) / denominator)
    return total / n


@pytest.mark.parametrize("fnm", [True, False])
def test_intent_nce_equals_the_reference_loop(fnm):
    generator = torch.Generator().manual_seed(0)
    centroids = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    intent_ids = torch.tensor([0, 1, 0, 2, 1, 0])
    views = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    loss = intent_nce(views, centroids[intent_ids], intent_ids if fnm else None, 0.5)
    assert loss.item() == pytest.approx(
        reference_intent_nce(views, centroids[intent_ids], intent_ids, 0.5, fnm)
    )


def test_fnm_drops_exactly_the_same_intent_negatives():
    # anchor 0 shares intent 7 with row 2 only; all scores are 0 (orthogonal)
    views = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    intents = torch.tensor([[0, 0, 0], [0, 0, 0], [0, 0, 0.0]])
    intent_ids = torch.tensor([7, 8, 7])
    with_fnm = intent_nce(views, intents, intent_ids)
    # rows 0 and 2 keep 2 of 3 terms (log 2); row 1 keeps all 3 (log 3)
    assert with_fnm.item() == pytest.approx((2 * math.log(2) + math.log(3)) / 3)
    without = intent_nce(views, intents)
    assert without.item() == pytest.approx(math.log(3))
