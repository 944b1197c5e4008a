"""S3-Rec: objectives vs slow references, masks, attention direction, stages, attributes."""

import math
import re
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
    run_two_processes,
)

from recbole_ssl.config import Config
from recbole_ssl.data.attributes import ItemAttributes
from recbole_ssl.model import S3Rec
from recbole_ssl.model.s3rec import (
    PretrainBatch,
    append_item,
    info_nce,
    sigmoid_margin,
)
from recbole_ssl.trainer import S3RecTrainer
from recbole_ssl.utils import (
    ConfigError,
    get_model,
    get_trainer,
)


def prepare(config_dict, dataset="tiny"):
    return build("S3Rec", config_dict, dataset)[:4]


# ---------------------------------------------------------------- small pieces


def test_append_item_after_the_last_item_and_drops_the_oldest_of_full_rows():
    seq = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 7]])
    out, length = append_item(seq, torch.tensor([2, 1, 4]), torch.tensor([9, 8, 10]))
    assert out.tolist() == [[1, 2, 9, 0], [3, 8, 0, 0], [5, 6, 7, 10]]
    assert length.tolist() == [3, 2, 4]
    assert seq.tolist() == [[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 7]]  # unchanged


def test_info_nce_equals_a_loop_over_positives():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 9, generator=gen)
    positives = torch.rand(6, 9, generator=gen) < 0.3
    positives[0] = False  # a row without positives is left out
    positives[1] = True  # a row without negatives costs nothing
    rows = []
    for n in range(6):
        terms = []
        for p in positives[n].nonzero().flatten():
            negatives = logits[n][~positives[n]]
            candidates = torch.cat([logits[n, p : p + 1], negatives])
            terms.append(-F.log_softmax(candidates, 0)[0])
        if terms:
            rows.append(torch.stack(terms).mean())
    expected = torch.stack(rows).mean()
    assert torch.allclose(info_nce(logits, positives), expected, atol=1e-6)
    assert info_nce(logits, torch.zeros_like(positives)).item() == 0


# ---------------------------------------------------------------- attributes


def write_two_field_dataset(folder):
    """``tiny`` with its attributes split into two fields: categories and a brand."""
    target = folder / "twofields"
    target.mkdir()
    shutil.copy(DATA_DIR / "tiny" / "tiny.inter", target / "twofields.inter")
    lines = (DATA_DIR / "tiny" / "tiny.item").read_text().splitlines()
    rows = ["item_id:token\tcategories:token_seq\tbrand:token\tprice:float"]
    for line in lines[1:]:
        item, attributes = line.split("\t")
        tokens = attributes.split()
        rows.append(f"{item}\t{' '.join(tokens[:-1])}\tb{tokens[-1]}\t1.5")
    (target / "twofields.item").write_text("\n".join(rows) + "\n")
    return folder


def test_several_attribute_fields_share_one_vocabulary(tiny_config, tmp_path):
    write_two_field_dataset(tmp_path)
    config, model, train_data, _ = prepare(
        dict(
            tiny_config,
            data_path=str(tmp_path),
            item_attribute=["categories", "brand"],
            load_col={
                "inter": ["user_id", "item_id", "timestamp"],
                "item": ["item_id", "categories", "brand"],
            },
        ),
        dataset="twofields",
    )
    dataset = train_data._dataset
    n_categories = dataset.num("categories") - 1
    n_brands = dataset.num("brand") - 1
    attributes = model.attributes
    assert attributes.n_attributes == n_categories + n_brands
    assert model.attribute_embedding.num_embeddings == n_categories + n_brands + 1
    # item 3 of the raw file: categories 328 17 2, brand b41
    item = dataset.token2id("item_id", "3")
    ids = sorted(i for i in attributes.table[item].tolist() if i > 0)
    categories = [dataset.token2id("categories", t) for t in ("328", "17", "2")]
    brand = n_categories + dataset.token2id("brand", "b41")
    assert ids == sorted(categories + [brand])
    assert attributes.table[0].abs().sum() == 0  # the padding item has none
    assert min(ids) >= 1  # no real attribute on the padding row 0


def test_a_missing_or_wrong_attribute_field_is_named(tiny_config, tmp_path):
    with pytest.raises(
        ConfigError, match=r"field 'brand' is not loaded from tiny.item"
    ):
        prepare(dict(tiny_config, item_attribute=["attributes", "brand"]))
    with pytest.raises(ConfigError, match=r"field 'attributes' is not loaded"):
        prepare(
            dict(tiny_config, load_col={"inter": ["user_id", "item_id", "timestamp"]})
        )
    write_two_field_dataset(tmp_path)
    with pytest.raises(
        ConfigError, match="'price' of twofields.item is float, expected"
    ):
        prepare(
            dict(
                tiny_config,
                data_path=str(tmp_path),
                item_attribute="price",
                load_col={"inter": ["user_id", "item_id", "timestamp"], "item": "*"},
            ),
            dataset="twofields",
        )


def test_attribute_ids_start_at_one(tiny_config):
    _, model, train_data, _ = prepare(tiny_config)
    dataset = train_data._dataset
    table = ItemAttributes.from_dataset(dataset, ["attributes"]).table
    assert torch.equal(table, dataset.item_feat["attributes"].long())
    assert model.attributes.n_attributes == dataset.num("attributes") - 1


# ---------------------------------------------------------------- pretraining batch


def test_masks_and_segments_stay_on_real_positions(tiny_config):
    _, model, train_data, _ = prepare(dict(tiny_config, mask_ratio=0.5))
    torch.manual_seed(0)
    interaction = next(iter(train_data))
    before = interaction[model.ITEM_SEQ].clone()
    batch = model.pretrain_batch(interaction)
    real = batch.sequence > 0
    rows = torch.arange(real.size(0))
    assert (batch.length == real.sum(1)).all()
    assert not (batch.item_mask & ~real).any()  # never a padding position
    assert batch.item_mask[rows, batch.length - 1].all()  # the last item always
    assert 0.4 < batch.item_mask.sum() / real.sum() < 0.75
    token = model.mask_token
    assert ((batch.masked_sequence == token) == batch.item_mask).all()
    for seq in (batch.segment_context, batch.pos_segment, batch.neg_segment):
        assert ((seq > 0) == real).all()  # padding stays padding, nothing else is 0
    segment = (batch.segment_context == token) & real
    assert (segment.sum(1)[batch.has_segment] >= 1).all()
    assert (segment.sum(1) <= batch.length // 2).all()
    assert torch.equal(batch.pos_segment[segment], batch.sequence[segment])
    assert (batch.pos_segment[real & ~segment] == token).all()
    assert (batch.neg_segment[segment] != token).all()
    assert torch.equal(batch.neg_segment[~segment], batch.pos_segment[~segment])
    # a segment is contiguous
    for row in segment[batch.has_segment]:
        where = row.nonzero().flatten()
        assert (where.diff() == 1).all()
    # the input is untouched
    assert torch.equal(interaction[model.ITEM_SEQ], before)


def interaction_of(model, rows):
    """A training batch whose r-th sequence, target appended, is ``rows[r]``."""
    item_seq = torch.zeros(len(rows), model.max_seq_length, dtype=torch.long)
    for r, items in enumerate(rows):
        item_seq[r, : len(items) - 1] = torch.tensor(items[:-1])
    return {
        model.ITEM_SEQ: item_seq,
        model.ITEM_SEQ_LEN: torch.tensor([len(items) - 1 for items in rows]),
        model.POS_ITEM_ID: torch.tensor([items[-1] for items in rows]),
    }


# rows that share items: 0 and 1 are equal, 2 reverses them, 3 and 4 repeat items
SHARED_ROWS = [
    [1, 2, 3, 4, 5, 6],
    [1, 2, 3, 4, 5, 6],
    [6, 5, 4, 3, 2, 1],
    [2, 4, 6, 2, 4],
    [3, 3, 3, 3],
    [5, 1],
    [1, 2, 3, 4, 5, 6, 1, 2, 3],
]


def test_sp_negative_segment_comes_from_another_row(tiny_config):
    """SP's negative: the segment's positions filled with a run of another row's items,
    from a random start, wrapping round that row; never the row itself.

    Each draw is made twice with the same seed: on ``SHARED_ROWS``, and on rows of the
    same lengths where every (row, position) has its own id, which names the row and
    position each negative item was copied from. (The draws depend on the lengths
    only, not on the item ids.) In ``SHARED_ROWS`` the negative must then hold exactly
    the items at those source positions: comparing contents alone could not tell
    row 0 from row 1.
    """
    _, model, _, _ = prepare(tiny_config)
    width, token = model.max_seq_length, model.mask_token
    n_rows = len(SHARED_ROWS)
    labels = [
        [1 + r * width + p for p in range(len(items))]
        for r, items in enumerate(SHARED_ROWS)
    ]
    donors = {r: set() for r in range(n_rows)}
    starts = {r: set() for r in range(n_rows)}
    for seed in range(300):
        torch.manual_seed(seed)
        named = model.pretrain_batch(interaction_of(model, labels))
        torch.manual_seed(seed)
        shared = model.pretrain_batch(interaction_of(model, SHARED_ROWS))
        for r, items in enumerate(SHARED_ROWS):
            segment = (named.segment_context[r] == token).nonzero().flatten().tolist()
            assert (
                shared.segment_context[r] == token
            ).nonzero().flatten().tolist() == (segment)
            assert 1 <= len(segment) <= len(items) // 2
            source = [int(named.neg_segment[r, p]) - 1 for p in segment]
            (donor,) = {s // width for s in source}  # one source row per segment
            assert donor != r
            n = len(SHARED_ROWS[donor])
            positions = [s % width for s in source]
            assert positions == [(positions[0] + k) % n for k in range(len(segment))]
            assert shared.neg_segment[r, segment].tolist() == [
                SHARED_ROWS[donor][q] for q in positions
            ]
            donors[r].add(donor)
            starts[donor].add(positions[0])
    for r, items in enumerate(SHARED_ROWS):
        assert donors[r] == set(range(n_rows)) - {r}  # every other row, at random
        assert starts[r] == set(range(len(items)))  # from any of its positions


def raw_histories():
    """Each raw user's raw items in time order, read from ``tiny.inter`` itself."""
    lines = (DATA_DIR / "tiny" / "tiny.inter").read_text().splitlines()[1:]
    fields = sorted((line.split("\t") for line in lines), key=lambda f: float(f[2]))
    history = {}
    for user, item, _ in fields:
        history.setdefault(user, []).append(item)
    return history


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_pretraining_rows_hold_no_validation_or_test_item(tiny_config, train_mode):
    """Pretraining sees the training split only: every row is a prefix of the user's
    items without the last two (validation, test); ``sequence`` gives one row per user,
    all training items; ``prefix`` every prefix of 2 or more training items.

    Expected rows come from the raw file (no user of ``tiny`` has more than 48 items,
    so nothing is cut at 50, and no user has an item twice).
    """
    config, model, train_data, _ = prepare(dict(tiny_config, train_mode=train_mode))
    dataset = train_data._dataset
    history = raw_histories()
    uid, token = config["USER_ID_FIELD"], model.mask_token
    lengths = {user: [] for user in history}
    for interaction in train_data:
        batch = model.pretrain_batch(interaction)
        for r, user in enumerate(dataset.id2token(uid, interaction[uid])):
            n = int(batch.length[r])
            row = dataset.id2token("item_id", batch.sequence[r, :n]).tolist()
            items = history[user]
            assert items[-2] not in row and items[-1] not in row
            assert row == items[:n]
            lengths[user].append(n)
            # the masked and segment views hold the row's items or the mask token
            for view in (
                batch.masked_sequence,
                batch.segment_context,
                batch.pos_segment,
            ):
                kept = view[r, :n] != token
                assert torch.equal(view[r, :n][kept], batch.sequence[r, :n][kept])
    for user, items in history.items():
        train = len(items) - 2
        expected = [train] if train_mode == "sequence" else list(range(2, train + 1))
        assert sorted(lengths[user]) == expected


@pytest.mark.parametrize("mask_ratio", [0.2, 0.5])
def test_mip_masks_each_item_with_probability_mask_ratio(tiny_config, mask_ratio):
    """Every real position but the last (always masked) is masked independently with
    probability ``mask_ratio``: the count over ~45,000 positions lies within 5 sigma
    of the binomial mean, and so does the count of masked pairs of neighbours (disjoint
    pairs, probability ``mask_ratio ** 2``). Padding is never masked.
    """
    _, model, train_data, _ = prepare(dict(tiny_config, mask_ratio=mask_ratio))
    interactions = list(train_data)
    masked = drawn = both = pairs = 0
    for seed in range(20):
        torch.manual_seed(seed)
        for interaction in interactions:
            batch = model.pretrain_batch(interaction)
            length = interaction[model.ITEM_SEQ_LEN] + 1  # the target appended
            positions = torch.arange(batch.sequence.size(1))
            real = positions < length[:, None]
            last = positions == (length - 1)[:, None]
            assert not (batch.item_mask & ~real).any()
            assert (batch.masked_sequence[~real] == 0).all()
            assert batch.item_mask[last].all()
            free = real & ~last
            masked += int(batch.item_mask[free].sum())
            drawn += int(free.sum())
            pair = free[:, 0:-1:2] & free[:, 1::2]
            mask = batch.item_mask
            both += int((mask[:, 0:-1:2] & mask[:, 1::2] & pair).sum())
            pairs += int(pair.sum())
    assert drawn > 40_000
    for count, n, p in ((masked, drawn, mask_ratio), (both, pairs, mask_ratio**2)):
        assert abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (count, n, p)


def hand_made_batch(model):
    """Two rows of items 1-6 with chosen masks and segments (and, for BCE, a
    negative item at each position)."""
    t = model.mask_token
    sequence = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 1, 0, 0]])
    length = torch.tensor([4, 3])
    item_mask = torch.tensor(
        [[False, True, False, True, False], [False, False, True, False, False]]
    )
    return PretrainBatch(
        sequence=sequence,
        length=length,
        masked_sequence=sequence.masked_fill(item_mask, t),
        item_mask=item_mask,
        segment_context=torch.tensor([[1, t, t, 4, 0], [t, 6, 1, 0, 0]]),
        pos_segment=torch.tensor([[t, 2, 3, t, 0], [5, t, t, 0, 0]]),
        neg_segment=torch.tensor([[t, 5, 6, t, 0], [3, t, t, 0, 0]]),
        has_segment=torch.tensor([True, True]),
        negative=torch.tensor([[6, 5, 6, 1, 3], [2, 3, 4, 4, 1]]),
    )


def reference_losses(model, batch, with_attributes=True, form="InfoNCE", sums=False):
    """The four objectives with one encoder call per row and Python loops.

    ``form`` ``"BCE"``: the authors' code (models.py:96-160): binary cross-entropy
    over every attribute, and ``-log sigmoid(sigmoid(f+) - sigmoid(f-))`` for MIP
    (against the position's negative) and SP. ``sums``: each objective's terms
    summed, not averaged. Without attributes AAP and MAP come back as ``None``
    (nothing to score).
    """

    def encode(row):
        return model.encode_full(row[None], bidirectional=True)[0]  # [L, H]

    def nce(scores, positive_ids):
        if form == "BCE":  # every attribute: -log p if the item has it, else -log(1-p)
            p = torch.sigmoid(scores)
            return -sum(
                torch.log(p[j]) if j + 1 in positive_ids else torch.log(1 - p[j])
                for j in range(len(scores))
            )
        terms = []
        for p in positive_ids:
            negatives = [s for j, s in enumerate(scores) if j + 1 not in positive_ids]
            terms.append(-F.log_softmax(torch.stack([scores[p - 1], *negatives]), 0)[0])
        return torch.stack(terms).mean()

    def pair(f_pos, f_neg):
        if form == "BCE":
            return -torch.log(
                torch.sigmoid(torch.sigmoid(f_pos) - torch.sigmoid(f_neg))
            )
        return -F.logsigmoid(f_pos - f_neg)

    aap, mip, map_, sp = [], [], [], []
    for r in range(batch.sequence.size(0)):
        out = encode(batch.masked_sequence[r])
        for t in range(int(batch.length[r])):
            item = int(batch.sequence[r, t])
            ids = []
            if with_attributes:
                attributes = model.attribute_embedding.weight[1:]
                ids = sorted({int(a) for a in model.attribute_table[item] if a > 0})
            if batch.item_mask[r, t]:
                if form == "BCE":  # the item against the position's negative
                    negative = int(batch.negative[r, t])
                    f = (
                        model.mip_linear(out[t])
                        @ model.item_weight[[item, negative]].t()
                    )
                    mip.append(pair(f[0], f[1]))
                else:  # Eq. 12: every real item a candidate (rows 1.., not padding)
                    logits = model.mip_linear(out[t]) @ model.item_weight[1:].t()
                    mip.append(-F.log_softmax(logits, 0)[item - 1])
                if ids:
                    map_.append(nce(model.map_linear(out[t]) @ attributes.t(), ids))
            elif ids:
                aap.append(nce(model.aap_linear(out[t]) @ attributes.t(), ids))
        last = int(batch.length[r]) - 1
        context = encode(batch.segment_context[r])[last]
        pos = encode(batch.pos_segment[r])[last]
        neg = encode(batch.neg_segment[r])[last]
        f_pos = model.sp_linear(context) @ pos
        f_neg = model.sp_linear(context) @ neg
        sp.append(pair(f_pos, f_neg))

    def weighted(weight, xs):
        if not xs:
            return None
        return weight * (torch.stack(xs).sum() if sums else torch.stack(xs).mean())

    return (
        weighted(model.aap_weight, aap),
        weighted(model.mip_weight, mip),
        weighted(model.map_weight, map_),
        weighted(model.sp_weight, sp),
    )


@pytest.mark.parametrize("form", ["InfoNCE", "BCE"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_each_objective_equals_a_slow_reference(tiny_config, form, reduction):
    settings = dict(pretrain_loss_type=form, pretrain_reduction=reduction)
    _, model, train_data, _ = prepare(dict(tiny_config, **settings))
    model.eval()  # no dropout: both computations see the same network
    batch = hand_made_batch(model)
    model.pretrain_batch = lambda interaction: batch
    losses = model.pretrain_loss(None)
    expected = reference_losses(model, batch, form=form, sums=reduction == "sum")
    for name, got, want in zip(losses._fields, losses, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5), name
    assert all(loss > 0 for loss in losses)


def test_the_authors_mip_and_sp_are_bounded_by_their_sigmoids():
    # -log sigmoid(sigmoid(a) - sigmoid(b)): the difference of two sigmoids lies in
    # (-1, 1), so the loss stays between -log sigmoid(1) and -log sigmoid(-1)
    big = torch.tensor([50.0, -50.0, 0.0])
    loss = sigmoid_margin(big, -big)
    assert torch.allclose(
        loss,
        torch.tensor([-math.log(1 / (1 + math.exp(-1))), 1.3133, math.log(2)]),
        atol=1e-4,
    )


def test_bce_pretraining_draws_mip_negatives_the_user_never_had(tiny_config):
    """With ``pretrain_loss_type: BCE`` every position of a real batch gets a negative:
    a real item (never the padding id or the mask token) that the row's user has not
    had in training; the draws repeat with the seed."""
    _, model, train_data, _ = prepare(dict(tiny_config, pretrain_loss_type="BCE"))
    interaction = next(iter(train_data))
    first = model.pretrain_batch(interaction).negative
    users = interaction[model.USER_ID][:, None].expand_as(first)
    assert first.shape == interaction[model.ITEM_SEQ].shape
    assert (first >= 1).all() and (first < model.n_items).all()
    dataset = train_data._dataset
    history = {}
    feat = dataset.inter_feat
    for user, seq, target in zip(
        feat[model.USER_ID].tolist(),
        feat[model.ITEM_SEQ].tolist(),
        feat[model.POS_ITEM_ID].tolist(),
        strict=True,
    ):
        history.setdefault(user, set()).update(seq + [target])
    pairs = zip(users.flatten().tolist(), first.flatten().tolist(), strict=True)
    for user, item in pairs:
        assert item not in history[user]
    _, again, _, _ = prepare(dict(tiny_config, pretrain_loss_type="BCE"))
    assert torch.equal(again.pretrain_batch(interaction).negative, first)
    infonce = prepare(tiny_config)[1]
    assert infonce.pretrain_batch(interaction).negative is None


def test_mip_never_scores_the_padding_row(tiny_config):
    # Eq. 12's candidates are items: whatever the padding row holds, MIP is the same
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    batch = hand_made_batch(model)
    model.pretrain_batch = lambda interaction: batch
    before = model.pretrain_loss(None).mip_loss
    with torch.no_grad():
        model.item_embedding.weight[0] = 50.0
    assert torch.equal(model.pretrain_loss(None).mip_loss, before)


def reached(loss, model):
    """``{name: gradient}`` of the parameters ``loss`` gives a nonzero gradient."""
    if not loss.requires_grad:
        return {}
    names, params = zip(*model.named_parameters(), strict=True)
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {
        name: grad
        for name, grad in zip(names, grads, strict=True)
        if grad is not None and grad.abs().sum() > 0
    }


HEADS = {
    "aap_loss": "aap_linear.weight",
    "mip_loss": "mip_linear.weight",
    "map_loss": "map_linear.weight",
    "sp_loss": "sp_linear.weight",
}


@pytest.mark.parametrize("form", ["InfoNCE", "BCE"])
def test_each_objective_trains_its_own_head(tiny_config, form):
    """Each objective's gradient reaches its own bilinear ``W`` and no other head; the
    attribute embedding only from AAP and MAP, never its padding row 0; every
    objective trains the shared encoder and the mask token's embedding."""
    _, model, _, _ = prepare(dict(tiny_config, pretrain_loss_type=form))
    batch = hand_made_batch(model)
    model.pretrain_batch = lambda interaction: batch
    model.set_stage("pretrain")
    losses = model.calculate_loss(None)
    for name, loss in zip(losses._fields, losses, strict=True):
        grads = reached(loss, model)
        heads = {head for head in HEADS.values() if head in grads}
        assert heads == {HEADS[name]}, name
        assert ("attribute_embedding.weight" in grads) == (
            name in ("aap_loss", "map_loss")
        )
        if "attribute_embedding.weight" in grads:
            assert grads["attribute_embedding.weight"][0].abs().sum() == 0
        assert "trm_encoder.layer.0.multi_head_attention.query.weight" in grads, name
        assert grads["item_embedding.weight"][model.mask_token].abs().sum() > 0, name


# ---------------------------------------------------------------- attention


def test_encoder_is_bidirectional_only_when_asked(tiny_config):
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    seq = torch.tensor([[3, 4, 5, 6, 7, 0]])
    changed = seq.clone()
    changed[0, 3] = 9
    causal = model.encode(seq), model.encode(changed)
    assert torch.allclose(causal[0][0, :3], causal[1][0, :3])  # before t: unmoved
    both = model.encode(seq, True), model.encode(changed, True)
    assert not torch.allclose(both[0][0, :3], both[1][0, :3])
    # padding never leaks in: a longer padded width gives the same outputs
    wider = torch.cat([seq, torch.zeros(1, 4, dtype=torch.long)], 1)
    assert torch.allclose(model.encode(wider, True)[0, :6], both[0][0], atol=1e-6)


def test_the_stage_decides_the_attention(tiny_config):
    _, model, train_data, _ = prepare(tiny_config)
    seen = []
    encode = model.encode

    def recording(item_seq, bidirectional=False):
        seen.append(bidirectional)
        return encode(item_seq, bidirectional)

    model.encode = recording
    batch = next(iter(train_data))
    model.set_stage("pretrain")
    assert len(model.calculate_loss(batch)) == 4
    model.set_stage("finetune")
    assert model.calculate_loss(batch).dim() == 0
    model.eval()
    model.full_sort_predict(batch)
    assert seen == [True, False, False]


# ---------------------------------------------------------------- stages


def pretrain_only(tiny_config, **settings):
    config, model, train_data, valid_data = prepare(
        dict(tiny_config, train_stage="pretrain", **settings)
    )
    trainer = S3RecTrainer(config, model)
    trainer.fit(train_data, valid_data)
    trainer.tensorboard.close()
    return trainer, model


def test_finetuning_starts_from_the_pretrained_weights(tiny_config):
    trainer, pretrained = pretrain_only(tiny_config, pretrain_epochs=1)
    path = trainer.pretrain_model_file
    saved = torch.load(path, weights_only=True)["state_dict"]
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(saved[name], tensor), name

    config, model, train_data, valid_data = prepare(
        dict(tiny_config, train_stage="finetune", pre_model_path=path)
    )
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = S3RecTrainer(config, model)
    trainer.load_pretrained(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert not torch.equal(
        fresh["item_embedding.weight"], saved["item_embedding.weight"]
    )
    trainer.tensorboard.close()


def test_one_run_finetunes_the_weights_it_pretrained(tiny_config):
    config, model, train_data, valid_data = prepare(
        dict(tiny_config, pretrain_epochs=1)
    )
    trainer = S3RecTrainer(config, model)
    at_start = {}
    start = trainer.start_finetuning

    def recording():
        at_start.update({k: v.clone() for k, v in model.state_dict().items()})
        start()

    trainer.start_finetuning = recording
    trainer.fit(train_data, valid_data)
    saved = torch.load(trainer.pretrain_model_file, weights_only=True)
    assert saved["epoch"] == 0
    for name, tensor in saved["state_dict"].items():
        assert torch.equal(at_start[name], tensor), name
    assert model.stage == "finetune"
    trainer.tensorboard.close()


def test_pretrained_weights_of_another_shape_are_a_clear_error(tiny_config, tmp_path):
    trainer, _ = pretrain_only(tiny_config, pretrain_epochs=1, hidden_size=32)
    path = trainer.pretrain_model_file
    config, model, _, _ = prepare(
        dict(tiny_config, train_stage="finetune", pre_model_path=path)
    )
    with pytest.raises(ConfigError, match=r"does not fit .* item_embedding.weight"):
        S3RecTrainer(config, model).load_pretrained(path)
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="pre_model_path: checkpoint file not found"):
        S3RecTrainer(config, model).load_pretrained(missing)


def their_state_dict(model, n_layers=2):
    """A state dict under the names of the S3-Rec authors' released models (as their
    Beauty-epochs-150.pt lists them), each tensor the shape of ``model``'s own."""
    own = model.state_dict()
    names = {
        "item_embeddings.weight": "item_embedding.weight",
        "attribute_embeddings.weight": "attribute_embedding.weight",
        "position_embeddings.weight": "position_embedding.weight",
        "LayerNorm.weight": "LayerNorm.weight",
        "LayerNorm.bias": "LayerNorm.bias",
    }
    for n in range(n_layers):
        for part in ("query", "key", "value", "dense", "LayerNorm"):
            for kind in ("weight", "bias"):
                names[f"item_encoder.layer.{n}.attention.{part}.{kind}"] = (
                    f"trm_encoder.layer.{n}.multi_head_attention.{part}.{kind}"
                )
        for part in ("dense_1", "dense_2", "LayerNorm"):
            for kind in ("weight", "bias"):
                names[f"item_encoder.layer.{n}.intermediate.{part}.{kind}"] = (
                    f"trm_encoder.layer.{n}.feed_forward.{part}.{kind}"
                )
    gen = torch.Generator().manual_seed(0)
    theirs = {t: torch.randn(own[o].shape, generator=gen) for t, o in names.items()}
    for head in ("aap", "mip", "map", "sp"):  # theirs have a bias
        theirs[f"{head}_norm.weight"] = torch.randn(64, 64, generator=gen)
        theirs[f"{head}_norm.bias"] = torch.zeros(64)
    return theirs, names


def test_the_authors_item_rows_follow_the_dataset_s_tokens():
    from s3rec_authors_weights import item_rows

    # their table: padding 0, items 1..3, the mask row 4
    assert item_rows(["[PAD]", "3", "1", "2"], 5) == [0, 3, 1, 2, 4]
    for token in ("x", "4", "0"):  # not one of their item ids
        with pytest.raises(
            ConfigError, match=f"item token '{token}' is not an item id"
        ):
            item_rows(["[PAD]", "1", token], 5)


def test_the_authors_released_weights_become_what_finetuning_starts_from(
    tiny_config, tmp_path, monkeypatch, capsys
):
    import s3rec_authors_weights

    out = tmp_path / "theirs.pth"  # written below
    config, model, _, _, dataset = build(
        "S3Rec", dict(tiny_config, train_stage="finetune", pre_model_path=str(out))
    )
    tokens = dataset.field2id_token[dataset.iid_field]
    theirs, names = their_state_dict(model)
    # their ids are the tokens (the tiny dataset's are not 1..n): rows up to the
    # largest, then the mask row
    rows = max(int(t) for t in tokens[1:]) + 2
    theirs["item_embeddings.weight"] = torch.randn(rows, config["hidden_size"])
    released = tmp_path / "Tiny-epochs-150.pt"
    torch.save(theirs, released)
    monkeypatch.setattr(
        "sys.argv",
        [
            "s3rec_authors_weights.py",
            f"--released={released}",
            f"--out={out}",
            "--dataset=tiny",
            f"--data_path={DATA_DIR}",
        ],
    )
    s3rec_authors_weights.main()
    assert "36 tensors" in capsys.readouterr().out

    trainer = S3RecTrainer(config, model)
    trainer.load_pretrained(str(out))
    trainer.tensorboard.close()
    mine = model.state_dict()
    table = theirs["item_embeddings.weight"]
    assert torch.equal(mine["item_embedding.weight"][0], table[0])
    for item, token in enumerate(tokens[1:], start=1):
        assert torch.equal(mine["item_embedding.weight"][item], table[int(token)])
    assert torch.equal(mine["item_embedding.weight"][-1], table[-1])  # the mask row
    for their_name, our_name in names.items():
        if their_name.startswith(("item_embeddings.", "attribute_embeddings.")):
            continue
        assert torch.equal(mine[our_name], theirs[their_name]), our_name
    # fine-tuning reads neither the attribute table nor the heads: not converted
    assert not torch.equal(
        mine["attribute_embedding.weight"], theirs["attribute_embeddings.weight"]
    )


def test_the_authors_weights_script_ends_bad_input_with_one_line(
    tiny_config, tmp_path, monkeypatch
):
    import s3rec_authors_weights

    _, model, _, _ = prepare(tiny_config)
    theirs, _ = their_state_dict(model)  # an item table of the model's size
    released = tmp_path / "released.pt"
    torch.save(theirs, released)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")

    def message(released, dataset="tiny"):
        monkeypatch.setattr(
            "sys.argv",
            [
                "s3rec_authors_weights.py",
                f"--released={released}",
                f"--out={tmp_path / 'out.pth'}",
                f"--dataset={dataset}",
                f"--data_path={DATA_DIR}",
            ],
        )
        with pytest.raises(SystemExit) as stop:
            s3rec_authors_weights.main()
        assert not (tmp_path / "out.pth").exists()
        return str(stop.value.code)

    assert message(tmp_path / "text.pt").startswith(
        f"--released: cannot read {tmp_path / 'text.pt'}"
    )
    assert message(tmp_path / "other.pt").endswith("is not an S3-Rec model of theirs")
    assert message(released, "nosuch").startswith(
        "--dataset nosuch: dataset 'nosuch' not found"
    )
    # the tiny dataset's tokens run past the rows of a table of its own size
    assert re.match(
        r"--dataset tiny: item token '\d+' is not an item id of the released model",
        message(released),
    )


# ---------------------------------------------------------------- variants, names


def test_isp_variant_on_a_dataset_without_item_file(tiny_config, tmp_path):
    (tmp_path / "noitem").mkdir()
    shutil.copy(DATA_DIR / "tiny" / "tiny.inter", tmp_path / "noitem" / "noitem.inter")
    config, model, train_data, valid_data = prepare(
        dict(tiny_config, data_path=str(tmp_path), pretrain_epochs=1),
        dataset="noitem",
    )
    assert not set(model.state_dict()) & ATTRIBUTE_PARAMETERS
    model.set_stage("pretrain")
    losses = model.calculate_loss(next(iter(train_data)))
    assert losses.aap_loss.item() == 0 and losses.map_loss.item() == 0
    assert losses.mip_loss > 0 and losses.sp_loss > 0
    trainer = S3RecTrainer(config, model)
    _, result = trainer.fit(train_data, valid_data, saved=False)
    assert all(math.isfinite(v) for v in result.values())
    trainer.tensorboard.close()


ATTRIBUTE_PARAMETERS = {
    "attribute_embedding.weight",
    "aap_linear.weight",
    "map_linear.weight",
}


def test_isp_variant_trains_mip_and_sp_only(tiny_config):
    """``item_attribute: ~`` (S3-Rec_ISP): no attribute parameters; on a hand-made
    batch AAP and MAP are exactly 0 and give no gradient, while MIP and SP equal the
    slow reference and train the encoder and their heads."""
    _, full, _, _ = prepare(tiny_config)
    _, model, _, _ = prepare(dict(tiny_config, item_attribute=None))
    assert set(full.state_dict()) - set(model.state_dict()) == ATTRIBUTE_PARAMETERS
    assert set(model.state_dict()) <= set(full.state_dict())
    model.eval()
    batch = hand_made_batch(model)
    model.pretrain_batch = lambda interaction: batch
    losses = model.pretrain_loss(None)
    aap, mip, map_, sp = reference_losses(model, batch, with_attributes=False)
    assert aap is None and map_ is None
    assert losses.aap_loss.item() == 0 and losses.map_loss.item() == 0
    assert reached(losses.aap_loss + losses.map_loss, model) == {}
    assert torch.allclose(losses.mip_loss, mip, atol=1e-5)
    assert torch.allclose(losses.sp_loss, sp, atol=1e-5)
    for name, head in (
        ("mip_loss", "mip_linear.weight"),
        ("sp_loss", "sp_linear.weight"),
    ):
        grads = reached(getattr(losses, name), model)
        assert head in grads and "item_embedding.weight" in grads, name


def test_items_without_attributes_add_no_attribute_loss(tiny_config):
    """With attributes configured but none on the batch's items, AAP and MAP are
    exactly 0 and nothing reaches the attribute embedding or their heads (the
    authors' BCE would still push every attribute's score down); MIP and SP are
    unchanged, equal to the slow reference."""
    _, model, _, _ = prepare(tiny_config)
    model.eval()
    model.attribute_table.zero_()
    batch = hand_made_batch(model)
    model.pretrain_batch = lambda interaction: batch
    losses = model.pretrain_loss(None)
    _, mip, _, sp = reference_losses(model, batch)
    assert losses.aap_loss.item() == 0 and losses.map_loss.item() == 0
    assert not set(reached(sum(losses), model)) & ATTRIBUTE_PARAMETERS
    assert torch.allclose(losses.mip_loss, mip, atol=1e-5)
    assert torch.allclose(losses.sp_loss, sp, atol=1e-5)


@pytest.mark.parametrize("dataset", ["tiny", "ml-100k"])
def test_s3rec_resolves_to_the_plugin(dataset):
    config = Config("S3Rec", dataset)
    assert config.model_class is S3Rec is get_model("S3Rec")
    assert get_trainer(config["MODEL_TYPE"], "S3Rec") is S3RecTrainer
    # RecBole core's S3Rec.yaml says class / pretrain / 500 / CE
    assert config["train_stage"] == "pretrain_finetune"
    assert config["item_attribute"] == "attributes"
    assert config["pretrain_epochs"] == 100
    assert config["train_mode"] == "sequence"


@pytest.mark.parametrize(
    "option, message",
    [
        ("--mask_ratio=1.5", "mask_ratio must be a number in [0, 1], got 1.5"),
        ("--train_stage=both", "train_stage must be one of ['pretrain_finetune'"),
        ("--train_stage=finetune", "train_stage 'finetune' needs pre_model_path"),
        ("--sp_weight=-1", "sp_weight must be a number >= 0, got -1"),
        ("--pretrain_loss_type=NCE", "pretrain_loss_type must be one of ['InfoNCE'"),
        ("--pretrain_reduction=max", "pretrain_reduction must be one of ['mean'"),
        (
            "--train_stage=finetune --pre_model_path=missing.pth",
            "pre_model_path: checkpoint file not found: missing.pth",
        ),
    ],
)
def test_bad_config_is_one_clear_line(tiny_here, option, message):
    out = tiny_here("S3Rec", "--epochs=1", *option.split())
    assert_one_clear_line(out, message)


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_smoke_pretrain_and_finetune_through_the_run_script(tmp_path, train_mode):
    """Smoke test, kept on purpose: both stages through the CLI end with finite
    metrics and log the four pretraining losses (behaviour is pinned above)."""
    out = run_tiny(
        tmp_path,
        "S3Rec",
        f"--train_mode={train_mode}",
        "--pretrain_epochs=1",
        "--epochs=1",
        "--show_progress=False",
    )
    assert_finite_run(out)
    assert "pretrained weights saved to" in out.stderr
    assert "aap_loss" in out.stderr and "sp_loss" in out.stderr


@pytest.mark.slow
def test_smoke_s3rec_with_two_processes(tiny_config):
    """Smoke test, kept on purpose: both stages run in RecBole's distributed mode."""
    run_two_processes("S3Rec", dict(tiny_config, pretrain_epochs=1))
