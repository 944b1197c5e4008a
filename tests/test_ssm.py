"""The sampled softmax (loss_type SSM): the loss by hand, accidental hits, the logQ
correction, the shared sampler's distributions and seeds, every model whose next-item
loss is the shared one trains with it, and the others refuse it in one line."""

import math

import pytest
import torch
from conftest import build, loss_and_drawn_negatives

from recbole_ssl.config import Config
from recbole_ssl.errors import ConfigError
from recbole_ssl.model.losses import sampled_softmax
from recbole_ssl.model.negatives import SharedNegativeSampler
from recbole_ssl.quick_start import run_recbole_ssl


def log_softmax_first(scores):
    return scores[0] - math.log(sum(math.exp(s) for s in scores))


def test_sampled_softmax_by_hand():
    pos = torch.tensor([1.0, 0.5])
    neg = torch.tensor([[0.0, 2.0, -1.0], [0.5, 1.0, 3.0]])
    first = -log_softmax_first([1.0, 0.0, 2.0, -1.0])
    second = -log_softmax_first([0.5, 0.5, 1.0, 3.0])
    assert sampled_softmax(pos, neg).item() == pytest.approx((first + second) / 2)
    per_position = sampled_softmax(pos, neg, reduction="none")
    assert per_position.tolist() == pytest.approx([first, second])
    # an accidental hit (a negative that is the row's target) leaves the softmax
    hit = torch.tensor([[False, True, False], [False, False, False]])
    first_without = -log_softmax_first([1.0, 0.0, -1.0])
    got = sampled_softmax(pos, neg, hit, reduction="none")
    assert got.tolist() == pytest.approx([first_without, second])


def test_logq_correction_by_hand_and_uniform_is_unchanged():
    pos = torch.tensor([1.0])
    neg = torch.tensor([[0.0, 2.0]])
    pos_q, neg_q = torch.tensor([0.5]), torch.tensor([0.25, 0.125])
    expected = -log_softmax_first(
        [1.0 - math.log(0.5), 0.0 - math.log(0.25), 2.0 - math.log(0.125)]
    )
    got = sampled_softmax(pos, neg, pos_log_q=pos_q.log(), neg_log_q=neg_q.log())
    assert got.item() == pytest.approx(expected)
    uniform = torch.full((1,), math.log(0.1))
    same = sampled_softmax(pos, neg, pos_log_q=uniform, neg_log_q=uniform.expand(2))
    assert same.item() == pytest.approx(sampled_softmax(pos, neg).item())


def test_gradients_reach_the_target_and_every_negative():
    pos = torch.tensor([0.3, -0.2], requires_grad=True)
    neg = torch.randn(2, 4, requires_grad=True)
    hit = torch.zeros(2, 4, dtype=torch.bool)
    hit[1, 2] = True
    sampled_softmax(pos, neg, hit).backward()
    assert (pos.grad < 0).all()  # raising the target's score lowers the loss
    assert (neg.grad[~hit] > 0).all() and neg.grad[1, 2] == 0


def pairs():
    # item 1: 3 users, item 2: 1 user (twice), item 3: none; 4 items with the padding
    users = torch.tensor([0, 1, 2, 0, 0, 1])
    items = torch.tensor([1, 1, 1, 2, 2, 0])
    return users, items


def test_uniform_draws_are_real_items_and_repeat_with_the_seed():
    sampler = SharedNegativeSampler(*pairs(), n_items=4, seed=3)
    draws = sampler.sample(4000, torch.device("cpu"))
    assert draws.min() >= 1 and draws.max() <= 3
    shares = torch.bincount(draws, minlength=4)[1:] / 4000.0
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03)
    again = SharedNegativeSampler(*pairs(), n_items=4, seed=3)
    assert torch.equal(again.sample(4000, torch.device("cpu")), draws)
    other = SharedNegativeSampler(*pairs(), n_items=4, seed=4)
    assert not torch.equal(other.sample(4000, torch.device("cpu")), draws)
    assert sampler.log_q(torch.tensor([1, 3])).tolist() == pytest.approx(
        [math.log(1 / 3)] * 2
    )


def test_popularity_draws_follow_the_training_users():
    sampler = SharedNegativeSampler(*pairs(), n_items=4, distribution="popularity")
    draws = sampler.sample(8000, torch.device("cpu"))
    counts = torch.bincount(draws, minlength=4)
    assert counts[0] == 0 and counts[3] == 0  # padding, and an item no one had
    assert counts[1] / 8000 == pytest.approx(0.75, abs=0.02)  # 3 users of 4
    assert sampler.log_q(torch.tensor([1, 2])).tolist() == pytest.approx(
        [math.log(0.75), math.log(0.25)]
    )


def test_sasrec_ssm_is_the_formula_on_its_own_outputs_and_negatives(tiny_config):
    config, model, train_data, _, _ = build(
        "SASRec",
        dict(
            tiny_config,
            loss_type="SSM",
            train_neg_num=5,
            ssm_distribution="popularity",
        ),
    )
    model.eval()  # no dropout: the forward pass below sees the same outputs
    batch = next(iter(train_data))
    loss, negatives = loss_and_drawn_negatives(model, batch)
    assert negatives.shape == (5,)
    output = model.encode(batch[model.ITEM_SEQ]).detach()
    weight = model.item_weight.detach()
    log_q = model.negatives.probabilities.log()
    targets = model.next_item_targets(batch)
    expected, count = 0.0, 0
    for row, position in (targets > 0).nonzero().tolist():
        vector, target = output[row, position], int(targets[row, position])
        scores = [float(vector @ weight[target] - log_q[target])]
        for item in negatives.tolist():
            if item != target:  # accidental hits leave the softmax
                scores.append(float(vector @ weight[item] - log_q[item]))
        expected -= log_softmax_first(scores)
        count += 1
    assert loss.item() == pytest.approx(expected / count, rel=1e-4)


@pytest.mark.parametrize(
    "model_name", ["SASRec", "CL4SRec", "CoSeRec", "ICLRec", "S3Rec"]
)
def test_every_shared_loss_model_runs_an_epoch_with_ssm(tiny_config, model_name):
    settings = dict(tiny_config, loss_type="SSM", train_neg_num=16, record=False)
    if model_name == "ICLRec":
        settings["num_intent_clusters"] = 4
    if model_name == "S3Rec":
        settings["pretrain_epochs"] = 1
    result = run_recbole_ssl(model=model_name, dataset="tiny", config_dict=settings)
    assert all(math.isfinite(value) for value in result["test_result"].values())


@pytest.mark.parametrize("model_name", ["DSSRec", "MMInfoRec"])
def test_models_with_their_own_next_item_loss_refuse_ssm(tiny_config, model_name):
    with pytest.raises(ConfigError, match="loss_type 'SSM' is not one") as error:
        Config(model_name, "tiny", config_dict=dict(tiny_config, loss_type="SSM"))
    assert "\n" not in str(error.value)


def test_bad_ssm_settings_name_the_key(tiny_config):
    for key, value in (("ssm_distribution", "zipf"), ("ssm_logq", "yes")):
        with pytest.raises(ConfigError, match=key):
            build("SASRec", dict(tiny_config, loss_type="SSM", **{key: value}))


def test_every_rank_draws_the_same_negatives(tiny_config):
    """Seeded from ``seed`` alone: the ranks of a distributed run share the batch's
    negatives, as one process draws them for the whole batch."""
    config, _, _, _, dataset = build(
        "SASRec", dict(tiny_config, loss_type="SSM", train_neg_num=8)
    )
    draws = []
    for rank in (0, 1):
        config["local_rank"] = rank
        model = config.model_class(config, dataset)
        draws.append(model.negatives.sample(8, torch.device("cpu")))
    assert torch.equal(*draws)
