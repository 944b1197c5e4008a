"""The bounded-memory full sort gives the collector exactly the ranks of the whole
score table: the same top-k hits, ground-truth counts and metrics."""

import pytest
import torch

import recbole_ssl.trainer.trainer as trainer_module
from recbole_ssl.quick_start import run_recbole_ssl
from recbole_ssl.trainer.full_sort import top_k_scores


def collector_topk(scores, positive_u, positive_i, k):
    """What RecBole's Collector keeps for 'rec.topk' (collector.py): the hits of the
    top k in order, and each user's number of ground truths."""
    _, top = torch.topk(scores, k, dim=-1)
    pos_matrix = torch.zeros_like(scores, dtype=torch.int)
    pos_matrix[positive_u, positive_i] = 1
    return torch.cat(
        [torch.gather(pos_matrix, 1, top), pos_matrix.sum(1, keepdim=True)], dim=1
    )


def masked(scores, history):
    scores = scores.clone()
    scores[:, 0] = -torch.inf
    scores[history] = -torch.inf
    return scores


@pytest.mark.parametrize("rows", [1, 3, 7])
@pytest.mark.parametrize("k", [5, 26])
def test_compact_table_gives_the_whole_tables_ranks(rows, k):
    torch.manual_seed(0)
    n_rows, n_items = 7, 30
    scores = torch.randn(n_rows, n_items)
    history = (torch.tensor([0, 0, 2, 5, 6, 6]), torch.tensor([3, 4, 9, 1, 2, 29]))
    # users with one, two and three ground truths; row 6's first is ranked high
    positive_u = torch.tensor([0, 1, 1, 2, 3, 4, 5, 6, 6, 6])
    positive_i = torch.tensor([7, 8, 12, 5, 6, 11, 20, 25, 26, 27])
    scores[6, 25] = 10.0
    expected = collector_topk(masked(scores, history), positive_u, positive_i, k)
    table, column = top_k_scores(
        lambda start, end: scores[start:end].clone(),
        n_rows,
        history,
        positive_u,
        positive_i,
        k,
        rows,
    )
    assert table.shape == (n_rows, k + 3)
    assert torch.equal(collector_topk(table, positive_u, column, k), expected)


def test_more_cut_off_than_unmasked_items_keeps_masked_items_above_ground_truths():
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 0.5]])
    history = (torch.tensor([0, 0]), torch.tensor([2, 3]))
    positive_u, positive_i = torch.tensor([0]), torch.tensor([4])
    expected = collector_topk(masked(scores, history), positive_u, positive_i, 4)
    table, column = top_k_scores(
        lambda start, end: scores[start:end].clone(),
        1,
        history,
        positive_u,
        positive_i,
        4,
        1,
    )
    assert torch.equal(collector_topk(table, positive_u, column, 4), expected)


def test_a_run_evaluates_the_same_in_bounded_memory(tiny_config, monkeypatch):
    calls = []

    def counted(*args):
        calls.append(args[1])  # the batch's users
        return top_k_scores(*args)

    monkeypatch.setattr(trainer_module, "top_k_scores", counted)
    settings = dict(tiny_config, record=False, saved=False)
    whole = run_recbole_ssl(
        "SASRec", "tiny", config_dict=dict(settings, eval_max_scores=None)
    )
    assert not calls  # RecBole's own path
    # a budget of one user's scores: every batch is scored a user at a time
    bounded = run_recbole_ssl(
        "SASRec", "tiny", config_dict=dict(settings, eval_max_scores=1)
    )
    assert calls  # validation and test went through the compact table
    assert bounded["best_valid_result"] == whole["best_valid_result"]
    assert bounded["test_result"] == whole["test_result"]
