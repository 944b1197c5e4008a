"""The papers' BCE and BPR: hand-computed losses, negatives never from the user's
training items, seeded draws, and every model trains with them in both regimes."""

import math
from collections import defaultdict

import pytest
import torch
from conftest import DATA_DIR, build, loss_and_drawn_negatives, ready_for_one_batch

from recbole_ssl.errors import ConfigError
from recbole_ssl.model.losses import bce_next_item, bpr_next_item
from recbole_ssl.model.negatives import NegativeSampler


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_bce_by_hand():
    pos = torch.tensor([0.0, 2.0])
    neg = torch.tensor([[0.0, 1.0], [-1.0, 3.0]])  # two negatives per position
    first = -math.log(sigmoid(0.0)) - math.log(1 - sigmoid(0.0))
    first -= math.log(1 - sigmoid(1.0))
    second = -math.log(sigmoid(2.0)) - math.log(1 - sigmoid(-1.0))
    second -= math.log(1 - sigmoid(3.0))
    assert bce_next_item(pos, neg).item() == pytest.approx((first + second) / 2)
    per_position = bce_next_item(pos, neg, reduction="none")
    assert per_position.tolist() == pytest.approx([first, second])
    # one negative, the papers' case: 2 log 2 at zero scores
    assert bce_next_item(torch.zeros(3), torch.zeros(3, 1)).item() == pytest.approx(
        2 * math.log(2)
    )


def test_bpr_by_hand():
    pos = torch.tensor([1.0])
    neg = torch.tensor([[0.0, 3.0]])
    expected = -(math.log(sigmoid(1.0)) + math.log(sigmoid(-2.0))) / 2
    assert bpr_next_item(pos, neg).item() == pytest.approx(expected)


def training_items():
    """Each tiny user's items but its last two (validation and test, leave-one-out),
    read from the atomic file itself."""
    rows = defaultdict(list)
    with open(DATA_DIR / "tiny" / "tiny.inter") as f:
        next(f)
        for line in f:
            user, item, time = line.split("\t")
            rows[user].append((float(time), item))
    return {user: {item for _, item in sorted(r)[:-2]} for user, r in rows.items()}


@pytest.mark.parametrize("train_mode", ["prefix", "sequence"])
def test_negatives_are_never_a_training_item_nor_padding(tiny_config, train_mode):
    config, model, train_data, _, dataset = build(
        "SASRec", dict(tiny_config, loss_type="BCE", train_mode=train_mode)
    )
    sampler = model.negatives
    users = torch.arange(1, dataset.user_num).repeat_interleave(300)
    drawn = sampler.sample(users, num=2)  # [U * 300, 2]
    assert drawn.min() >= 1 and drawn.max() <= dataset.item_num - 1
    by_user = training_items()
    token = dataset.field2id_token
    for user, items in zip(users.tolist(), drawn.tolist(), strict=True):
        history = by_user[token["user_id"][user]]
        assert not {token["item_id"][i] for i in items} & history
    # every item the user has not had is drawn, and about equally often
    had = {dataset.token2id("item_id", i) for i in by_user[token["user_id"][1]]}
    allowed = set(range(1, dataset.item_num)) - had
    counts = torch.bincount(sampler.sample(torch.ones(200 * len(allowed))).flatten())
    assert set(counts.nonzero().flatten().tolist()) == allowed
    assert counts[list(allowed)].float().std() < 0.15 * 200


def test_draws_repeat_with_the_seed_and_differ_with_another():
    users = torch.tensor([0, 0, 1, 1, 2])
    items = torch.tensor([1, 2, 3, 4, 5])

    def draw(seed):
        sampler = NegativeSampler(users, items, 50, seed=seed)
        return sampler.sample(torch.tensor([0, 1, 2] * 20), num=3)

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))
    sampler = NegativeSampler(users, items, 50, seed=7)
    assert not torch.equal(sampler.sample(users), sampler.sample(users))  # it goes on


def test_a_user_with_every_item_is_a_clear_error():
    users = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ConfigError, match="user 0 has interacted with every item"):
        NegativeSampler(users, torch.tensor([1, 2, 3, 4]), 5)


def test_sasrec_bce_is_the_formula_on_its_own_outputs_and_negatives(tiny_config):
    config, model, train_data, _, _ = build(
        "SASRec", dict(tiny_config, loss_type="BCE", train_neg_num=2)
    )
    model.eval()  # no dropout: the forward pass below sees the same outputs
    batch = next(iter(train_data))
    loss, negative = loss_and_drawn_negatives(model, batch)
    output = model.encode(batch[model.ITEM_SEQ]).detach()
    item_weight = model.item_weight.detach()
    targets = model.next_item_targets(batch)
    expected, count = 0.0, 0
    for row, position in (targets > 0).nonzero().tolist():
        vector = output[row, position]
        target = targets[row, position]
        terms = -math.log(sigmoid(float(vector @ item_weight[target])))
        for item in negative[count]:
            terms -= math.log(1 - sigmoid(float(vector @ item_weight[item])))
        expected += terms
        count += 1
    assert count == negative.size(0) and negative.size(1) == 2
    assert loss.item() == pytest.approx(expected / count, rel=1e-4)


MODELS = {
    "SASRec": {},
    "CL4SRec": {},
    "CoSeRec": {},
    "ICLRec": {"num_intent_clusters": 8},
    "DSSRec": {},
    "MMInfoRec": {"hidden_size": 32, "inner_size": 64},
    "S3Rec": {},
}


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
@pytest.mark.parametrize("loss_type", ["BCE", "BPR"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_trains_on_the_sampled_losses(
    tiny_config, model_name, loss_type, train_mode
):
    """One batch of each model in each regime (DSSRec has only the sequence one): a
    finite loss whose gradient reaches the item embeddings."""
    if model_name == "DSSRec" and train_mode == "prefix":
        pytest.skip("DSSRec trains in the sequence regime only")
    config_dict = dict(
        tiny_config, loss_type=loss_type, train_mode=train_mode, **MODELS[model_name]
    )
    config, model, train_data, _, _ = build(model_name, config_dict)
    ready_for_one_batch(model_name, model, train_data)
    loss = model.calculate_loss(next(iter(train_data)))
    total = sum(loss) if isinstance(loss, tuple) else loss
    assert torch.isfinite(total)
    total.backward()
    grad = model.item_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_bpr_in_the_prefix_regime_needs_no_loader_negatives(tiny_config):
    config, model, train_data, _, _ = build(
        "SASRec", dict(tiny_config, loss_type="BPR", train_mode="prefix")
    )
    batch = next(iter(train_data))
    assert model.NEG_ITEM_ID not in batch.columns
    assert torch.isfinite(model.calculate_loss(batch))
