"""MMInfoRec: MINCE masks and values, the loss and the scores by hand (step alignment,
instances, memory forms, roll-out), attributes, caching, runs."""

import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DATA_DIR,
    assert_finite_run,
    assert_one_clear_line,
    build,
    run_tiny,
)
from recbole.data.interaction import Interaction

from recbole_ssl.model.losses import mince
from recbole_ssl.model.mminforec import future_targets


def two_sequences(model):
    """A batch of two right-padded histories, [3, 4] and [5]."""
    return Interaction(
        {
            model.ITEM_SEQ: torch.tensor([[3, 4, 0], [5, 0, 0]]),
            model.ITEM_SEQ_LEN: torch.tensor([2, 1]),
        }
    )


def prepare(config_dict, dataset="tiny"):
    return build("MMInfoRec", config_dict, dataset)[:4]


# ---------------------------------------------------------------- MINCE


def slow_mince(predictions, targets, instances, items, temperature, multi):
    losses = []
    for p in range(predictions.size(0)):
        pos, allc = [], []
        for j in range(instances.size(0)):
            copies = instances[j] if multi else instances[j, :1]
            for z in copies:
                s = torch.exp(predictions[p] @ z / temperature)
                same = bool(items[j] == targets[p])
                if multi:
                    allc.append(s)
                    if same:
                        pos.append(s)
                elif j == p:
                    pos.append(s)
                    allc.append(s)
                elif not same:
                    allc.append(s)
        losses.append(-torch.log(sum(pos) / sum(allc)))
    return torch.stack(losses).mean()


def test_mince_equals_a_slow_loop_and_repeats_are_positives():
    gen = torch.Generator().manual_seed(0)
    items = torch.tensor([4, 7, 4, 9, 7])  # item 4 and item 7 appear twice
    predictions = torch.randn(5, 6, generator=gen)
    instances = torch.randn(5, 3, 6, generator=gen)
    for multi in (True, False):
        got = mince(predictions, items, instances, items, 2.0, multi=multi)
        want = slow_mince(predictions, items, instances, items, 2.0, multi)
        assert torch.allclose(got, want, atol=1e-5), multi


def test_a_repeated_item_is_a_positive_never_a_negative_of_itself():
    # three ground truths: item 4 twice (same latent), item 7 once
    instances = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    items = torch.tensor([4, 7, 4])
    predictions = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    e2 = math.exp(2)
    four = -math.log(2 * e2 / (2 * e2 + 1))  # both 4s positive, the 7 negative
    seven = -math.log(e2 / (e2 + 2))  # the two 4s negative
    loss = mince(predictions, items, instances, items, 1.0)
    assert loss.item() == pytest.approx((2 * four + seven) / 3, rel=1e-5)
    # NCE: only its own instance is positive; the other 4 is left out, not negative
    own = -math.log(e2 / (e2 + 1))
    nce = mince(predictions, items, instances, items, 1.0, multi=False)
    assert nce.item() == pytest.approx((2 * own + seven) / 3, rel=1e-5)


def test_one_copy_one_positive_is_the_vanilla_nce():
    gen = torch.Generator().manual_seed(1)
    items = torch.tensor([1, 2, 3, 5])  # no repeats
    predictions = torch.randn(4, 8, generator=gen)
    instances = torch.randn(4, 1, 8, generator=gen)
    nce = F.cross_entropy(predictions @ instances[:, 0].t() / 0.5, torch.arange(4))
    for multi in (True, False):
        got = mince(predictions, items, instances, items, 0.5, multi=multi)
        assert torch.allclose(got, nce, atol=1e-6)


def test_cosine_mince_by_hand():
    # prediction (3, 4) has norm 5; instances of items 1 and 2 lie along the axes
    predictions = torch.tensor([[3.0, 4.0]])
    instances = torch.tensor([[[2.0, 0.0]], [[0.0, 0.5]]])
    items = torch.tensor([1, 2])
    # cosines 0.6 (positive, item 1) and 0.8 (negative), temperature 0.5
    want = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(1.6)))
    got = mince(predictions, items[:1], instances, items, 0.5, similarity="cos")
    assert got.item() == pytest.approx(want, rel=1e-6)
    # the dot product sees the lengths: 6 against 2
    dot = mince(predictions, items[:1], instances, items, 0.5)
    assert dot.item() == pytest.approx(math.log1p(math.exp(4 - 12)), abs=1e-6)
    with pytest.raises(ValueError, match="unknown similarity 'l2'"):
        mince(predictions, items[:1], instances, items, 0.5, similarity="l2")


def test_cosine_scores_are_cosines(tiny_config):
    _, model, _, _ = prepare(dict(tiny_config, mince_similarity="cos"))
    model.eval()
    batch = two_sequences(model)
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        predicted = model.read_memory(
            model.gather_indexes(
                model.contexts(batch[model.ITEM_SEQ]), torch.tensor([1, 0])
            )
        )
        latents = model.encode_items(torch.arange(1, model.n_items))
    want = F.cosine_similarity(predicted[:, None], latents[None], dim=-1)
    assert torch.allclose(scores[:, 1:], want, atol=1e-5)
    assert torch.all(scores[:, 0] == 0)  # the padding item


# ---------------------------------------------------------------- calculate_loss by hand

# A batch of three right-padded histories with their training targets. Row r's items
# followed by its target are 9 4 5 8 6 / 7 4 3 / 2 5 9 4. A row's first item (9, 7, 2)
# is no ground truth of that row (9 is one of row 2), so it is no instance either.
HAND_SEQ = [[9, 4, 5, 8], [7, 4, 0, 0], [2, 5, 9, 0]]
HAND_LENGTHS = [4, 2, 3]
HAND_TARGETS = [6, 3, 4]
# (row, position, item): the item that position t of the row must match at step k, the
# one k places later (step 1: the next item), nothing past the target. Written by hand.
STEP_TARGETS = {
    1: [
        (0, 0, 4), (0, 1, 5), (0, 2, 8), (0, 3, 6),
        (1, 0, 4), (1, 1, 3),
        (2, 0, 5), (2, 1, 9), (2, 2, 4),
    ],
    2: [(0, 0, 5), (0, 1, 8), (0, 2, 6), (1, 0, 3), (2, 0, 9), (2, 1, 4)],
    3: [(0, 0, 8), (0, 1, 6), (2, 0, 4)],
}  # fmt: skip
PREFIX_TARGETS = [(0, 3, 6), (1, 1, 3), (2, 2, 4)]  # prefix: each row's last position
# a model small enough to write every number out: 4-d latents, 2 copies, 3 slots
SMALL = dict(hidden_size=4, inner_size=8, positive_copies=2, memory_slots=3)
TAU = 2.0  # MINCE's temperature here: logits of about unit spread, every term counts


def hand_batch(model):
    return Interaction(
        {
            model.ITEM_SEQ: torch.tensor(HAND_SEQ),
            model.ITEM_SEQ_LEN: torch.tensor(HAND_LENGTHS),
            model.POS_ITEM_ID: torch.tensor(HAND_TARGETS),
        }
    )


def stub_encoders(model, monkeypatch, seed=0):
    """Replace ``g_enc`` and ``g_ta`` by fixed tensors, and give the memory and its MLP
    weights large enough to matter. Returns ``(table, shift, contexts)``.

    ``g_enc`` of item ``i`` is ``table[i]``; called on ``[P, q]`` items (the q copies of
    each ground truth) copy ``j`` is ``table[i] + shift[j]``, so the copies differ.
    ``g_ta`` returns ``contexts`` (``c_t``, ``[3, 4, D]``) whatever the batch.
    """
    gen = torch.Generator().manual_seed(seed)
    dim = model.hidden_size
    table = torch.randn(model.n_items, dim, generator=gen)
    shift = 0.5 * torch.randn(model.copies, dim, generator=gen)
    contexts = torch.randn(3, 4, dim, generator=gen)

    def encode_items(items):
        z = table[items]
        return z + shift if items.dim() == 2 else z

    monkeypatch.setattr(model, "encode_items", encode_items)
    monkeypatch.setattr(model, "contexts", lambda item_seq: contexts)
    with torch.no_grad():
        model.memory.copy_(torch.randn(model.memory.shape, generator=gen))
        for layer in (model.memory_mlp[0], model.memory_mlp[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))
    return table, shift, contexts


def memory_by_hand(model, c):
    """Eq. 3, ``softmax(MLP(c)) M + c``, the MLP written out as Linear-ReLU-Linear."""
    first, second = model.memory_mlp[0], model.memory_mlp[2]
    hidden = F.relu(c @ first.weight.t() + first.bias)
    weights = torch.softmax(hidden @ second.weight.t() + second.bias, dim=-1)
    return weights @ model.memory + c


def gru_by_hand(cell, x, h):
    """One GRU step on input ``x`` from hidden state ``h`` (gates r, z, n)."""
    r_x, z_x, n_x = (x @ cell.weight_ih.t() + cell.bias_ih).chunk(3, dim=-1)
    r_h, z_h, n_h = (h @ cell.weight_hh.t() + cell.bias_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
    n = torch.tanh(n_x + r * n_h)
    return (1 - z) * n + z * h


def mince_by_hand(pairs, z_hat, table, shift, tau, multi=True):
    """Eq. 6 (``multi``) or Eq. 5 over the ground truths of ``pairs``, by loops.

    The instances are the ground truths of the listed positions, each with its copies.
    MINCE: every copy of every instance of the prediction's item is a positive, every
    copy of every other instance a negative. NCE: the first copy of its own instance
    is the positive, the first copies of the instances of other items the negatives.
    """
    losses = []
    for p, (row, pos, item) in enumerate(pairs):
        positive = total = 0.0
        for o, (_, _, other) in enumerate(pairs):
            for j in range(shift.size(0) if multi else 1):
                e = torch.exp(z_hat[row, pos] @ (table[other] + shift[j]) / tau)
                if multi:
                    total = total + e
                    positive = positive + e if other == item else positive
                elif o == p:
                    total, positive = total + e, positive + e
                elif other != item:
                    total = total + e
        losses.append(-torch.log(positive / total))
    return torch.stack(losses).mean()


def ce_by_hand(pairs, z_hat, table, temperature):
    """Cross-entropy of each pair's item among all real items, ``z_hat . z / T``."""
    losses = []
    for row, pos, item in pairs:
        logits = table[1:] @ z_hat[row, pos] / temperature  # items 1 .. n_items - 1
        losses.append(-torch.log_softmax(logits, dim=0)[item - 1])
    return torch.stack(losses).mean()


def test_loss_pairs_step_k_with_the_item_k_places_later(tiny_config, monkeypatch):
    """calculate_loss against Eqs. 3, 4 and 6 by hand, one, two and three steps ahead.

    z_hat_1 = g_m(c_t), c' = GRU(z_hat_1, c_t), z_hat_2 = g_m(c'), and so on; step k at
    position t is scored against the item k places later (``STEP_TARGETS``), MINCE
    among that step's ground truths: the repeated 4s and 5s are positives of each
    other, every other ground truth (same row or not) a negative, and the rows' first
    items no instances. The CE part scores the same pairs against every item.
    """
    config = dict(tiny_config, **SMALL, pred_step=3, mince_temperature=TAU)
    _, model, _, _ = prepare(dict(config, ce_weight=2.0, ce_temperature=4.0))
    table, shift, contexts = stub_encoders(model, monkeypatch)
    batch = hand_batch(model)
    with torch.no_grad():
        z_hat, c = {1: memory_by_hand(model, contexts)}, {1: contexts}
        for k in (2, 3):
            c[k] = gru_by_hand(model.predictor, z_hat[k - 1], c[k - 1])
            z_hat[k] = memory_by_hand(model, c[k])
        mince_k = [
            mince_by_hand(STEP_TARGETS[k], z_hat[k], table, shift, TAU)
            for k in (1, 2, 3)
        ]
        ce_k = [ce_by_hand(STEP_TARGETS[k], z_hat[k], table, 4.0) for k in (1, 2, 3)]
        for steps in (1, 2, 3):
            model.pred_step = steps
            got = model.calculate_loss(batch)
            want = sum(mince_k[:steps]) / steps  # the mean over the steps
            assert got.mince_loss.item() == pytest.approx(want.item(), rel=1e-5), steps
            want_ce = 2.0 * sum(ce_k[:steps]) / steps
            assert got.ce_loss.item() == pytest.approx(want_ce.item(), rel=1e-5), steps
        # Eq. 5: one positive, the other 4s and 5s left out of the denominator
        model.pred_step, model.multi_instance = 1, False
        nce = mince_by_hand(STEP_TARGETS[1], z_hat[1], table, shift, TAU, multi=False)
        got = model.calculate_loss(batch).mince_loss
        assert got.item() == pytest.approx(nce.item(), rel=1e-5)


def test_prefix_rows_score_the_last_position_among_the_batch_targets(
    tiny_config, monkeypatch
):
    """``prefix``: one prediction per row, at its last item, and the candidates are the
    three rows' targets only: no temporal negatives (the rows' histories are none)."""
    config = dict(tiny_config, **SMALL, mince_temperature=TAU, ce_weight=0.0)
    _, model, _, _ = prepare(dict(config, train_mode="prefix"))
    table, shift, contexts = stub_encoders(model, monkeypatch)
    with torch.no_grad():
        want = mince_by_hand(
            PREFIX_TARGETS, memory_by_hand(model, contexts), table, shift, TAU
        )
        got = model.calculate_loss(hand_batch(model))
    assert got.mince_loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert got.ce_loss.item() == 0.0


def test_ranking_scores_z_hat_of_the_last_item_against_every_z(
    tiny_config, monkeypatch
):
    """Recommendation scores ``g_m(c_t) . z`` (the authors' code; Sec. III-B6 writes
    ``c_t``) with ``c_t`` at each row's last item and ``z`` of every item, 0 for padding.
    """
    _, model, _, _ = prepare(dict(tiny_config, **SMALL))
    table, _, contexts = stub_encoders(model, monkeypatch)
    model.eval()
    batch = hand_batch(model)
    with torch.no_grad():
        last = torch.stack([contexts[0, 3], contexts[1, 1], contexts[2, 2]])
        want = memory_by_hand(model, last) @ table.t()
        want[:, 0] = 0.0
        scores = model.full_sort_predict(batch)
        assert torch.allclose(scores, want, atol=1e-5)
        batch.update(Interaction({model.ITEM_ID: torch.tensor([6, 3, 4])}))
        picked = want[torch.arange(3), torch.tensor([6, 3, 4])]
        assert torch.allclose(model.predict(batch), picked, atol=1e-5)


# ---------------------------------------------------------------- model pieces


def test_memory_forms_by_hand(tiny_config):
    """Eq. 3 and the Fig. 3 ablation on a two-slot memory whose MLP reads the first
    two coordinates of ``relu(c)``: ``residual`` adds ``c`` to the read, ``no_residual``
    is the read alone (FC-M), ``none`` is ``c`` itself."""
    _, model, _, _ = prepare(dict(tiny_config, **dict(SMALL, memory_slots=2)))
    with torch.no_grad():
        model.memory_mlp[0].weight.copy_(torch.eye(4))
        model.memory_mlp[0].bias.zero_()
        model.memory_mlp[2].weight.copy_(torch.eye(4)[:2])
        model.memory_mlp[2].bias.zero_()
        model.memory.copy_(torch.tensor([[4.0, 0, 0, 8], [0, 4, 0, 0]]))
    ln3, ln7 = math.log(3), math.log(7)
    c = torch.tensor([[ln3, 0, 1, -1], [-2, ln7, 0, 0]])
    # slot weights softmax(ln 3, 0) = (3/4, 1/4) and softmax(0, ln 7) = (1/8, 7/8)
    read = torch.tensor([[3.0, 1, 0, 6], [0.5, 3.5, 0, 1]])
    expected = {"residual": read + c, "no_residual": read, "none": c}
    for form, want in expected.items():
        model.memory_type = form
        with torch.no_grad():
            assert torch.allclose(model.read_memory(c), want, atol=1e-6), form
    assert model.read_memory(c) is c  # none: z_hat is c_t itself


def test_future_targets():
    seq = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    lengths, target = torch.tensor([3, 4]), torch.tensor([8, 9])
    assert future_targets(seq, lengths, target, 1).tolist() == [
        [2, 3, 8, 0],
        [5, 6, 7, 9],
    ]
    assert future_targets(seq, lengths, target, 2).tolist() == [
        [3, 8, 0, 0],
        [6, 7, 9, 0],
    ]


def g_enc_by_hand(model, item, attributes=None):
    """Eq. 1 on exactly the item's token and its real attribute tokens (nothing padded,
    nothing masked), dropout off: the encoder's output at the item's token.  # [D]"""
    tokens = model.item_embedding.weight[item][None]
    if attributes is not None:
        tokens = torch.cat([tokens, model.attribute_embedding.weight[attributes]])
    mask = torch.zeros(1, 1, 1, tokens.size(0))
    hidden = model.attribute_norm(tokens)[None]
    return model.attribute_encoder(hidden, mask, output_all_encoded_layers=False)[-1][
        0, 0
    ]


def test_items_are_encoded_from_their_own_tokens_only(tiny_config, tmp_path):
    """``g_enc`` attends over the item and its real attributes only (padding slots
    masked) and returns the item token's output; no attributes: the item alone."""
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    table = model.attribute_table
    with torch.no_grad():
        six = table[6][table[6] > 0]
        assert 0 < six.numel() < table.size(1)  # item 6 has padding slots to mask
        table[5] = 0  # item 5 loses its attributes
        z = model.encode_items(torch.tensor([5, 6]))
        assert torch.allclose(z[0], g_enc_by_hand(model, 5, six[:0]), atol=1e-5)
        assert torch.allclose(z[1], g_enc_by_hand(model, 6, six), atol=1e-5)
        # the attributes change an item's latent
        assert not torch.allclose(z[1], g_enc_by_hand(model, 6, six[:0]), atol=1e-3)
    # a dataset with no .item file: ids only
    (tmp_path / "noitem").mkdir()
    shutil.copy(DATA_DIR / "tiny" / "tiny.inter", tmp_path / "noitem" / "noitem.inter")
    _, model, train_data, _ = prepare(
        dict(tiny_config, data_path=str(tmp_path)), dataset="noitem"
    )
    assert model.attributes is None
    model.eval()
    with torch.no_grad():
        z = model.encode_items(torch.tensor([6]))
        assert torch.allclose(z[0], g_enc_by_hand(model, 6), atol=1e-5)
    model.train()  # and a real batch trains (smoke)
    assert torch.isfinite(sum(model.calculate_loss(next(iter(train_data)))))


def test_attcc_puts_the_id_embedding_beside_g_enc_and_doubles_the_width(tiny_config):
    """``item_encoding: attcc`` (the authors' default): ``z = [x; g_enc(x, a)]``, and
    ``g_ta``, the memory, the GRU and the ranking all work at twice the hidden size."""
    _, model, train_data, _ = prepare(dict(tiny_config, item_encoding="attcc"))
    dim = model.hidden_size
    model.eval()
    table = model.attribute_table
    with torch.no_grad():
        six = table[6][table[6] > 0]
        z = model.encode_items(torch.tensor([6]))[0]
        assert z.shape == (2 * dim,)
        assert torch.allclose(z[:dim], model.item_embedding.weight[6])
        assert torch.allclose(z[dim:], g_enc_by_hand(model, 6, six), atol=1e-5)
        batch = next(iter(train_data))
        scores = model.full_sort_predict(batch)
        assert scores.shape == (len(batch), model.n_items)
    assert model.position_embedding.weight.shape[1] == 2 * dim
    assert model.memory.shape[1] == 2 * dim
    model.train()
    parts = model.calculate_loss(batch)
    sum(parts).backward()
    assert model.position_embedding.weight.grad.abs().sum() > 0
    assert model.item_embedding.weight.grad.abs().sum() > 0


def test_without_input_norm_g_enc_and_g_ta_read_their_inputs_raw(tiny_config):
    """``input_norm: False`` (the authors' encoders): ``g_enc`` runs on the raw item
    and attribute tokens, ``g_ta`` on ``z + position``; no input LayerNorm is left
    among the parameters."""
    config = dict(tiny_config, input_norm=False, item_encoding="attcc")
    _, model, train_data, _ = prepare(config)
    names = [name for name, _ in model.named_parameters()]
    assert not [n for n in names if n.startswith(("LayerNorm.", "attribute_norm."))]
    model.eval()
    table = model.attribute_table
    dim = model.hidden_size
    with torch.no_grad():
        six = table[6][table[6] > 0]
        tokens = torch.cat(
            [
                model.item_embedding.weight[6][None],
                model.attribute_embedding.weight[six],
            ]
        )
        mask = torch.zeros(1, 1, 1, tokens.size(0))
        g_enc = model.attribute_encoder(
            tokens[None], mask, output_all_encoded_layers=False
        )[-1][0, 0]
        z = model.encode_items(torch.tensor([6]))[0]
        assert torch.allclose(z[dim:], g_enc, atol=1e-5)
        assert torch.allclose(z[:dim], model.item_embedding.weight[6])
        # g_ta over [3, 6]: causal, no LayerNorm before the first layer
        seq = torch.tensor([[3, 6]])
        latents = model.encode_items(seq)
        hidden = latents + model.position_embedding.weight[:2]
        causal = torch.tensor([[0.0, -10000.0], [0.0, 0.0]])[None, None]
        want = model.trm_encoder(hidden, causal, output_all_encoded_layers=False)[-1]
        assert torch.allclose(model.contexts(seq), want, atol=1e-5)
    model.train()
    assert torch.isfinite(sum(model.calculate_loss(next(iter(train_data)))))


def test_one_layer_memory_mlp_is_the_authors_mb_fc(tiny_config):
    """``memory_mlp_layers: 1``: ``z_hat = softmax(W c + b) M + c`` with one Linear."""
    _, model, _, _ = prepare(
        dict(tiny_config, **dict(SMALL, memory_slots=2), memory_mlp_layers=1)
    )
    assert len(model.memory_mlp) == 1
    with torch.no_grad():
        model.memory_mlp[0].weight.copy_(torch.eye(4)[:2])
        model.memory_mlp[0].bias.zero_()
        model.memory.copy_(torch.tensor([[4.0, 0, 0, 8], [0, 4, 0, 0]]))
    ln3, ln7 = math.log(3), math.log(7)
    # no ReLU: the negative first coordinate of the second row counts
    c = torch.tensor([[ln3, 0, 1, -1], [-ln7, 0, 0, 0]])
    # slot weights softmax(ln 3, 0) = (3/4, 1/4) and softmax(-ln 7, 0) = (1/8, 7/8)
    read = torch.tensor([[3.0, 1, 0, 6], [0.5, 3.5, 0, 1]])
    with torch.no_grad():
        assert torch.allclose(model.read_memory(c), read + c, atol=1e-6)


def test_feed_forward_dropout_drops_the_inner_units_in_training(tiny_config):
    """``feed_forward_dropout: True`` (nn.TransformerEncoderLayer's, the authors'):
    dropout between the feed-forward's two Linears of every ``g_ta`` and ``g_enc``
    layer, in training only; off by default."""
    _, model, _, _ = prepare(tiny_config)
    assert isinstance(model.trm_encoder.layer[0].feed_forward.dense_2, torch.nn.Linear)
    _, model, _, _ = prepare(dict(tiny_config, feed_forward_dropout=True))
    for encoder in (model.trm_encoder, model.attribute_encoder):
        for layer in encoder.layer:
            ff = layer.feed_forward
            inner, dense_2 = ff.dense_2
            inner.p, ff.dropout.p = 1.0, 0.0  # every inner unit dropped, nothing else
            x = torch.randn(2, 3, ff.dense_1.in_features)
            with torch.no_grad():
                ff.train()
                assert torch.allclose(ff(x), ff.LayerNorm(dense_2.bias + x), atol=1e-6)
                ff.eval()
                hidden = ff.intermediate_act_fn(ff.dense_1(x))
                want = ff.LayerNorm(dense_2(hidden) + x)
                assert torch.allclose(ff(x), want, atol=1e-6)


def test_uniform_init_draws_every_parameter_like_the_authors(tiny_config):
    """``parameter_init: uniform``: every parameter, LayerNorm weights and biases
    included, uniform in +-1/sqrt(hidden_size) (the authors' reset_parameters)."""
    _, model, _, _ = prepare(dict(tiny_config, parameter_init="uniform"))
    bound = 1 / math.sqrt(model.hidden_size)
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= bound, name
    weights = model.LayerNorm.weight
    assert weights.abs().max() < bound and weights.std() > bound / 4
    table = model.item_embedding.weight
    assert table.abs().max() > 0.95 * bound  # the whole range, not RecBole's N(0, 0.02)


def test_instance_dropout_drops_mince_copies_only(tiny_config, monkeypatch):
    """``instance_dropout_prob`` (the authors' loss_fuse_dropout_prob) acts on MINCE's
    copies only: at 1 every copy is 0, all logits are 0 and MINCE is
    ``mean log(N / n_same)``; the CE part is unchanged; in evaluation nothing drops."""
    config = dict(tiny_config, **SMALL, mince_temperature=TAU, ce_temperature=4.0)
    _, model, _, _ = prepare(dict(config, ce_weight=2.0, instance_dropout_prob=0.5))
    model.instance_dropout.p = 1.0  # a config must stay below 1; the module need not
    table, _, contexts = stub_encoders(model, monkeypatch)
    model.train()
    items = [item for _, _, item in STEP_TARGETS[1]]
    want = sum(math.log(len(items) / items.count(i)) for i in items) / len(items)
    z_hat = memory_by_hand(model, contexts)
    with torch.no_grad():
        got = model.calculate_loss(hand_batch(model))
    assert got.mince_loss.item() == pytest.approx(want, rel=1e-6)
    ce = ce_by_hand(STEP_TARGETS[1], z_hat, table, 4.0)
    assert got.ce_loss.item() == pytest.approx(2.0 * ce.item(), rel=1e-5)


def test_memory_dropout_acts_on_z_hat_in_training_only(tiny_config):
    """``memory_dropout_prob`` (the authors' mb_dp) drops the memory read ``z_hat``
    (with its residual) in training; evaluation and ``memory_type: none`` keep it."""
    _, model, _, _ = prepare(dict(tiny_config, **SMALL, memory_dropout_prob=0.5))
    model.memory_dropout.p = 1.0  # every coordinate dropped, so the test is exact
    c = torch.randn(2, 4)
    model.train()
    assert torch.all(model.read_memory(c) == 0)
    model.eval()
    assert torch.allclose(model.read_memory(c), memory_by_hand(model, c))
    model.train()
    model.memory_type = "none"
    assert model.read_memory(c) is c


def test_dropout_copies_differ_in_training_only(tiny_config):
    _, model, _, _ = prepare(tiny_config)
    items = torch.tensor([[3, 3, 3]])
    copies = model.train().encode_items(items)[0]
    assert not torch.allclose(copies[0], copies[1])
    model.eval()
    copies = model.encode_items(items)[0]
    assert torch.allclose(copies[0], copies[1])


def test_smoke_gradients_reach_every_module(tiny_config):
    """Smoke test, kept on purpose: a real batch with two steps sends gradient to every
    module. What the loss computes is pinned by the by-hand tests above."""
    _, model, train_data, _ = prepare(dict(tiny_config, pred_step=2))
    sum(model.calculate_loss(next(iter(train_data)))).backward()
    for name in ("item_embedding", "attribute_embedding", "memory_mlp", "predictor"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name
    assert model.memory.grad.abs().sum() > 0
    assert model.trm_encoder.layer[0].feed_forward.dense_1.weight.grad.abs().sum() > 0


def test_evaluation_encodes_the_items_once(tiny_config):
    _, model, _, valid_data = prepare(tiny_config)
    calls = []
    encode = model.encode_items

    def counting(items):
        calls.append(items.numel())
        return encode(items)

    model.encode_items = counting
    model.eval()
    batch = two_sequences(model)
    with torch.no_grad():
        first = model.full_sort_predict(batch)
        all_items = len(calls)
        second = model.full_sort_predict(batch)
    assert torch.equal(first, second) and first.shape == (2, model.n_items)
    # the first call encodes the item table once; the second encodes nothing: the
    # sequences' items are read from that table too
    assert sum(calls[:all_items]) == model.n_items - 1
    assert sum(calls[all_items:]) == 0
    seq = batch[model.ITEM_SEQ]
    with torch.no_grad():  # the table's rows are the items' own encodings
        z = torch.zeros(*seq.shape, model.latent_size)
        z[seq > 0] = encode(seq[seq > 0])
        assert torch.allclose(
            model.contexts(seq), model.encode(seq, item_emb=z), atol=1e-6
        )
    # training invalidates the cache: after a parameter change evaluation sees it
    model.train()
    with torch.no_grad():
        model.item_embedding.weight[:, 0].add_(1.0)  # not undone by the LayerNorm
    model.eval()
    with torch.no_grad():
        third = model.full_sort_predict(batch)
        fresh = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]) @ (
            encode(torch.arange(model.n_items)).t()
        )
    assert not torch.allclose(third, first)
    assert torch.allclose(third[:, 1:], fresh[:, 1:], atol=1e-5)


# ---------------------------------------------------------------- next-item CE


def test_next_item_ce_by_hand(tiny_config):
    config = dict(
        tiny_config, ce_weight=1.0, ce_temperature=0.5, mince_similarity="cos"
    )
    _, model, _, _ = prepare(config)
    predicted = torch.tensor([[3.0, 4.0] + [0.0] * 62])  # unit length: [0.6, 0.8, 0..]
    latents = torch.zeros(4, 64)
    latents[0, 0] = 1.0  # the padding row never counts
    latents[1, 0] = 1.0  # cos 0.6
    latents[2, 1] = 1.0  # cos 0.8
    latents[3, 0] = -1.0  # cos -0.6
    got = model.next_item_ce(predicted, torch.tensor([2]), latents)
    logits = torch.tensor([0.6, 0.8, -0.6]) / 0.5
    assert got.item() == pytest.approx(
        -torch.log_softmax(logits, 0)[1].item(), abs=1e-6
    )


def test_ce_weight_scales_only_its_part_and_reaches_every_item(tiny_config):
    parts = {}
    for weight in (0.0, 1.0, 2.0):
        _, model, train_data, _ = prepare(dict(tiny_config, ce_weight=weight))
        batch = next(iter(train_data))
        torch.manual_seed(0)
        parts[weight] = model.calculate_loss(batch)
        sum(parts[weight]).backward()
        in_batch = torch.zeros(model.n_items, dtype=torch.bool)
        in_batch[batch[model.ITEM_SEQ].flatten()] = True
        in_batch[batch[model.POS_ITEM_ID]] = True
        grad = model.item_embedding.weight.grad.abs().sum(1)
        assert (grad[in_batch & (torch.arange(model.n_items) > 0)] > 0).all()
        outside = grad[~in_batch]
        assert outside.numel() > 0
        # MINCE ranks the batch's items only; the CE reaches every item
        assert (outside > 0).all() if weight else (outside == 0).all(), weight
    assert parts[0.0].ce_loss.item() == 0.0
    assert parts[1.0].ce_loss.item() > 0
    assert parts[2.0].ce_loss.item() == pytest.approx(2 * parts[1.0].ce_loss.item())


# ---------------------------------------------------------------- runs, config


def test_smoke_one_epoch_through_the_run_script(tmp_path):
    """Smoke test, kept on purpose: the command line end to end. The loss and the
    scores are pinned by the by-hand tests above."""
    out = run_tiny(
        tmp_path,
        "MMInfoRec",
        "--epochs=1",
        "--show_progress=False",
    )
    assert_finite_run(out)


@pytest.mark.parametrize(
    "option, message",
    [
        ("--memory_type=big", "memory_type must be one of ['residual'"),
        ("--positive_copies=0", "positive_copies must be an integer >= 1, got 0"),
        ("--mince_temperature=0", "mince_temperature must be a number > 0, got 0"),
        ("--mince_similarity=l2", "mince_similarity must be one of ['dot', 'cos']"),
        ("--ce_weight=-1", "ce_weight must be a number >= 0, got -1"),
        ("--ce_temperature=0", "ce_temperature must be a number > 0, got 0"),
        ("--item_encoding=sum", "item_encoding must be one of ['att', 'attcc']"),
        ("--parameter_init=xavier", "parameter_init must be one of ['normal'"),
        ("--input_norm=maybe", "config key 'input_norm' expects a bool"),
        ("--memory_mlp_layers=3", "memory_mlp_layers must be one of [1, 2]"),
        ("--feed_forward_dropout=0.5", "config key 'feed_forward_dropout' expects"),
        (
            "--instance_dropout_prob=1",
            "instance_dropout_prob must be a number in [0, 1)",
        ),
        ("--memory_dropout_prob=-1", "memory_dropout_prob must be a number in [0, 1)"),
        (
            "--pred_step=2 --train_mode=prefix",
            "pred_step > 1 needs train_mode 'sequence'",
        ),
    ],
)
def test_bad_config_is_one_clear_line(tiny_here, option, message):
    out = tiny_here("MMInfoRec", "--epochs=1", *option.split())
    assert_one_clear_line(out, message)
