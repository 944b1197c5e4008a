"""MMInfoRec: MINCE masks and values, NCE, memory forms, attributes, caching, runs."""

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
    run_two_processes,
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


# ---------------------------------------------------------------- model pieces


def test_memory_forms(tiny_config):
    for form in ("residual", "no_residual", "none"):
        _, model, _, _ = prepare(dict(tiny_config, memory_type=form, memory_slots=5))
        c = torch.randn(3, 64)
        read = torch.softmax(model.memory_mlp(c), -1) @ model.memory
        expected = {"residual": read + c, "no_residual": read, "none": c}[form]
        assert torch.allclose(model.read_memory(c), expected), form
    assert model.memory.shape == (5, 64)


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


def test_items_with_and_without_attributes(tiny_config, tmp_path):
    _, model, train_data, _ = prepare(tiny_config)
    model.eval()
    table = model.attribute_table
    bare = (table > 0).sum(1) == 0
    bare[0] = False
    with torch.no_grad():
        model.attribute_table[5] = 0  # item 5 loses its attributes
        z = model.encode_items(torch.tensor([5, 6]))
    assert z.shape == (2, 64) and torch.isfinite(z).all()
    # the attributes change an item's latent
    with torch.no_grad():
        model.attribute_table[6] = 0
        assert not torch.allclose(model.encode_items(torch.tensor([6]))[0], z[1])
    # a dataset with no .item file: ids only
    (tmp_path / "noitem").mkdir()
    shutil.copy(DATA_DIR / "tiny" / "tiny.inter", tmp_path / "noitem" / "noitem.inter")
    _, model, train_data, _ = prepare(
        dict(tiny_config, data_path=str(tmp_path)), dataset="noitem"
    )
    assert model.attributes is None
    assert torch.isfinite(sum(model.calculate_loss(next(iter(train_data)))))


def test_dropout_copies_differ_in_training_only(tiny_config):
    _, model, _, _ = prepare(tiny_config)
    items = torch.tensor([[3, 3, 3]])
    copies = model.train().encode_items(items)[0]
    assert not torch.allclose(copies[0], copies[1])
    model.eval()
    copies = model.encode_items(items)[0]
    assert torch.allclose(copies[0], copies[1])


def test_gradients_reach_every_module(tiny_config):
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
    # the second call encodes only its sequences' items, not the item table again
    assert sum(calls[:all_items]) >= model.n_items - 1
    assert sum(calls[all_items:]) == 3
    model.train()
    assert model._item_cache is None  # training invalidates the cache


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


def test_one_epoch_through_the_run_script(tmp_path):
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
        (
            "--pred_step=2 --train_mode=prefix",
            "pred_step > 1 needs train_mode 'sequence'",
        ),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, option, message):
    out = run_tiny(
        tmp_path,
        "MMInfoRec",
        "--epochs=1",
        *option.split(),
    )
    assert_one_clear_line(out, message)


@pytest.mark.slow
def test_mminforec_with_two_processes(tiny_config):
    run_two_processes("MMInfoRec", dict(tiny_config, epochs=1))
