"""DSSRec: the disentanglement layer and both losses against slow references,
confidence selection, futures from the training part only, runs, bad config."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_finite_run,
    assert_one_clear_line,
    build,
    run_tiny,
)
from recbole.data.interaction import Interaction

from recbole_ssl.model.dssrec import confidence_mask


def prepare(config_dict):
    config, model, train_data, _, dataset = build("DSSRec", config_dict)
    return config, model, train_data, dataset


def small_batch(model):
    """Three users: items of the tiny dataset, right-padded to width 6."""
    item_seq = torch.tensor(
        [[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0], [9, 10, 11, 12, 13, 14]]
    )
    return Interaction(
        {
            model.ITEM_SEQ: item_seq,
            model.ITEM_SEQ_LEN: torch.tensor([4, 2, 6]),
            model.POS_ITEM_ID: torch.tensor([20, 21, 22]),
        }
    )


def slow_parts(layer, z, side):
    """Eqs. 8-13 for one sequence ``z`` ([t, D]) with explicit loops."""
    t, d = z.shape
    prototypes = layer.norm_prototype(layer.prototypes)
    weights_k = []
    for i in range(t):
        zi = layer.norm_intention(z[i])
        weights_k.append(torch.softmax(prototypes @ zi / math.sqrt(d), 0))
    keys = []
    for i in range(t):
        key = layer.norm_key(layer.position.weight[i] + z[i])
        keys.append(key + F.relu(layer.key_map(key)))
    query = layer.norm_query(layer.position.weight[t - 1] + z[t - 1] + layer.query_bias)
    p = torch.softmax(torch.stack([k @ query for k in keys]) / math.sqrt(d), 0)
    outputs = []
    for k in range(layer.prototypes.size(0)):
        mixed = sum(weights_k[i][k] * p[i] * z[i] for i in range(t))
        outputs.append(layer.norm_output(layer.biases[side][k] + mixed))
    return torch.stack(outputs)  # [K, D]


def slow_encode(model, items, side):
    z = model.encode_full(torch.tensor(items)[None])[0]
    return slow_parts(model.disentangle, z, side)


# ---------------------------------------------------------------- the layer


def test_k_outputs_per_sequence_and_per_prefix(tiny_config):
    _, model, _, _ = prepare(dict(tiny_config, n_intents=3))
    model.eval()
    batch = small_batch(model)
    seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    parts = model.intents(seq, lengths)
    prefixes = model.intents(seq, lengths, every_prefix=True)
    assert parts.shape == (3, 3, 64) and prefixes.shape == (3, 6, 3, 64)
    rows = torch.arange(3)
    assert torch.allclose(prefixes[rows, lengths - 1], parts, atol=1e-5)
    for r, n in enumerate(lengths.tolist()):
        for t in range(1, n + 1):
            expected = slow_encode(model, seq[r, :t].tolist(), "input")
            assert torch.allclose(prefixes[r, t - 1], expected, atol=1e-5), (r, t)
    assert model.full_sort_predict(batch).shape == (3, model.n_items)


def test_input_and_label_sides_use_their_own_biases(tiny_config):
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    batch = small_batch(model)
    seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    before = {s: model.intents(seq, lengths, side=s) for s in ("input", "label")}
    assert not torch.allclose(before["input"], before["label"])
    with torch.no_grad():
        model.disentangle.biases["label"].add_(1.0)
    assert torch.equal(model.intents(seq, lengths, side="input"), before["input"])
    assert not torch.allclose(model.intents(seq, lengths, "label"), before["label"])


# ---------------------------------------------------------------- losses


def test_confidence_mask_keeps_exactly_the_smallest():
    losses = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 6.0])  # a partial batch
    kept = confidence_mask(losses, 0.5)  # ceil(0.5 * 7) = 4 smallest
    assert kept.nonzero().flatten().tolist() == [1, 2, 3, 5]
    ties = torch.ones(28)  # |B| = 7 real rows, K = 4
    assert confidence_mask(ties, 0.5).sum() == 14  # ceil(0.5 * 7 * 4), ties or not
    assert confidence_mask(ties, 0.3).sum() == math.ceil(0.3 * 28)
    assert confidence_mask(ties, 0.0).sum() == 0
    assert confidence_mask(ties, 1.0).sum() == 28


def test_kept_terms_follow_the_real_batch_size(tiny_config):
    _, model, _, _ = prepare(dict(tiny_config, n_intents=4, s2s_lambda=0.3))
    kept = []
    import recbole_ssl.model.dssrec as dssrec

    original = dssrec.confidence_mask

    def recording(losses, ratio):
        mask = original(losses, ratio)
        kept.append((losses.numel(), int(mask.sum())))
        return mask

    dssrec.confidence_mask = recording
    try:
        model.calculate_loss(small_batch(model))  # 3 rows, not the configured 64
    finally:
        dssrec.confidence_mask = original
    assert kept == [(12, math.ceil(0.3 * 3 * 4))]


def test_both_losses_equal_a_slow_reference(tiny_config):
    for s2i_loss, s2i_scale in (("CE", False), ("CE", True), ("in_batch", True)):
        _, model, _, _ = prepare(
            dict(
                tiny_config,
                n_intents=2,
                s2s_lambda=0.5,
                s2i_loss=s2i_loss,
                s2i_scale=s2i_scale,
            )
        )
        model.eval()
        batch = small_batch(model)
        seq = batch[model.ITEM_SEQ].tolist()
        lengths = batch[model.ITEM_SEQ_LEN].tolist()
        targets = batch[model.POS_ITEM_ID].tolist()
        cut = torch.tensor([2, 1, 4])
        parts = model.intents(
            batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], every_prefix=True
        )
        s2s = model.seq2seq_loss(parts, batch, cut=cut)
        s2i = model.seq2item_loss(parts, batch)

        d = math.sqrt(model.hidden_size)
        full = [seq[r][: lengths[r]] + [targets[r]] for r in range(3)]
        inputs = [slow_encode(model, full[r][: cut[r]], "input") for r in range(3)]
        labels = [
            slow_encode(model, full[r][cut[r] :][::-1], "label") for r in range(3)
        ]
        label_rows = torch.cat(labels)  # (u', k') in row-major order
        terms = []
        for r in range(3):
            for k in range(2):
                logits = label_rows @ inputs[r][k] / d
                terms.append(-F.log_softmax(logits, 0)[r * 2 + k])
        terms = torch.stack(terms)
        keep = torch.argsort(terms)[: math.ceil(0.5 * 3 * 2)]
        assert torch.allclose(s2s, terms[keep].sum() / 3, atol=1e-5)

        positions = []  # (parts of x_{1:t}, target x_{t+1})
        for r in range(3):
            for t in range(1, lengths[r] + 1):
                positions.append((slow_encode(model, full[r][:t], "input"), full[r][t]))
        weight = model.item_embedding.weight[: model.n_items]
        d_s2i = d if s2i_scale else 1.0
        losses = []
        for p, target in positions:
            if s2i_loss == "CE":
                scores = (p @ weight.t()).amax(0) / d_s2i
                losses.append(-F.log_softmax(scores, 0)[target])
            else:
                batch_targets = weight[[t for _, t in positions]]  # [N, D]
                scores = (p @ batch_targets.t()) / d_s2i  # [K, N]
                positive = (p @ weight[target]).amax() / d_s2i
                losses.append(torch.logsumexp(scores.flatten(), 0) - positive)
        assert torch.allclose(s2i, torch.stack(losses).mean(), atol=1e-5), s2i_loss


def test_lambda_zero_is_the_plain_seq2item_model(tiny_config):
    _, model, train_data, _ = prepare(dict(tiny_config, s2s_lambda=0.0))
    batch = next(iter(train_data))
    losses = model.calculate_loss(batch)
    assert losses.s2s_loss.item() == 0
    sum(losses).backward()
    assert model.disentangle.biases["label"].grad is None  # no label side at all
    assert model.disentangle.prototypes.grad.abs().sum() > 0


def test_s2s_weight_scales_only_the_seq2seq_part(tiny_config):
    _, model, train_data, _ = prepare(dict(tiny_config, s2s_weight=0.1))
    assert model.s2s_weight == 0.1
    batch = next(iter(train_data))
    model.eval()  # no dropout; the random cuts are seeded below
    losses = {}
    for weight in (0.1, 1.0):
        model.s2s_weight = weight
        torch.manual_seed(0)
        losses[weight] = model.calculate_loss(batch)
    assert losses[1.0].s2s_loss > 0
    assert torch.allclose(losses[0.1].s2s_loss, 0.1 * losses[1.0].s2s_loss)
    assert torch.equal(losses[0.1].s2i_loss, losses[1.0].s2i_loss)


def test_seq2seq_gradients_reach_both_sides(tiny_config):
    _, model, train_data, _ = prepare(tiny_config)
    losses = model.calculate_loss(next(iter(train_data)))
    assert losses.s2s_loss > 0
    losses.s2s_loss.backward()
    for side in ("input", "label"):
        assert model.disentangle.biases[side].grad.abs().sum() > 0, side
    assert (
        model.trm_encoder.layer[0].multi_head_attention.query.weight.grad.abs().sum()
        > 0
    )


# ---------------------------------------------------------------- futures


def test_future_sequences_reverse_the_items_after_the_cut(tiny_config):
    _, model, _, _ = prepare(tiny_config)
    batch = small_batch(model)
    future, future_len = model.future_sequences(
        batch[model.ITEM_SEQ],
        batch[model.ITEM_SEQ_LEN],
        batch[model.POS_ITEM_ID],
        torch.tensor([2, 1, 6]),
    )
    assert future_len.tolist() == [3, 2, 1]
    assert future.tolist() == [
        [20, 6, 5, 0, 0, 0],
        [21, 8, 0, 0, 0, 0],
        [22, 0, 0, 0, 0, 0],
    ]


def test_futures_hold_no_validation_or_test_item(tiny_config):
    _, model, train_data, dataset = prepare(tiny_config)
    history = dataset.user_history
    uid_field = dataset.uid_field
    checked = 0
    for batch in train_data:
        lengths = batch[model.ITEM_SEQ_LEN]
        future, future_len = model.future_sequences(
            batch[model.ITEM_SEQ],
            lengths,
            batch[model.POS_ITEM_ID],
            torch.ones_like(lengths),
        )  # cut after the first item: the longest future
        for row, user in enumerate(batch[uid_field].tolist()):
            items = history.items[history.indptr[user] : history.indptr[user + 1]]
            training = items[:-2].tolist()  # the last two are validation and test
            got = future[row, : future_len[row]].tolist()[::-1]
            assert got == training[len(training) - len(got) :]
            assert len(got) == min(len(training), 50) - 1
            checked += 1
    assert checked == 289


# ---------------------------------------------------------------- runs, config


def test_smoke_one_epoch_through_the_run_script(tmp_path):
    """Smoke test, kept on purpose: the command line end to end, with both loss parts
    named in the log. The losses are pinned by the exact tests above."""
    out = run_tiny(
        tmp_path,
        "DSSRec",
        "--epochs=1",
        "--show_progress=False",
    )
    assert_finite_run(out)
    assert "s2i_loss" in out.stderr and "s2s_loss" in out.stderr


@pytest.mark.parametrize(
    "option, message",
    [
        ("--train_mode=prefix", "DSSRec needs train_mode 'sequence'"),
        ("--s2s_lambda=1.5", "s2s_lambda must be a number in [0, 1], got 1.5"),
        ("--n_intents=0", "n_intents must be an integer >= 1, got 0"),
        ("--s2i_loss=BPR", "s2i_loss must be one of ['CE', 'in_batch']"),
    ],
)
def test_bad_config_is_one_clear_line(tiny_here, option, message):
    out = tiny_here("DSSRec", "--epochs=1", option)
    assert_one_clear_line(out, message)


def test_best_part_scores_match_max_over_parts_with_ties():
    """Scores and gradients as ``max(dim)`` over the parts' products gives them, a
    tie (two equal parts) included: the first tied part takes the gradient."""
    from recbole_ssl.model.dssrec import BestPartScores

    torch.manual_seed(0)
    parts = torch.randn(6, 3, 4, dtype=torch.double)
    parts[:, 2] = parts[:, 0]  # every score of part 2 ties with part 0's
    weight = torch.randn(9, 4, dtype=torch.double)
    upstream = torch.randn(6, 9, dtype=torch.double)
    results = []
    for scores_of in (
        BestPartScores.apply,
        lambda p, w: (p @ w.t()).max(1).values,
    ):
        p, w = parts.clone().requires_grad_(), weight.clone().requires_grad_()
        scores = scores_of(p, w)
        (scores * upstream).sum().backward()
        results.append((scores.detach(), p.grad, w.grad))
    for ours, torch_max in zip(*results, strict=True):
        assert torch.allclose(ours, torch_max)
    assert results[0][1][:, 2].abs().sum() == 0  # the later tied part gets nothing


def test_evaluation_scores_equal_the_training_scores(tiny_config):
    """Without gradients the scores come from a running maximum over the parts; they
    are the scores of the training path."""
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    parts = torch.randn(5, model.n_intents, model.hidden_size)
    with torch.no_grad():
        evaluated = model.item_scores(parts)
    trained = model.item_scores(parts)
    assert trained.requires_grad and not evaluated.requires_grad
    # equal up to the rounding of one product per part against one for all parts
    assert torch.allclose(evaluated, trained.detach(), rtol=1e-6, atol=1e-7)
