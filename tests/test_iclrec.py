"""ICLRec: the E-step hook, the ICL term, runs, distributed intents, bad config."""

import pytest
import torch
from conftest import (
    assert_finite_run,
    assert_one_clear_line,
    build,
    on_two_ranks,
    run_tiny,
    run_two_processes,
)

from recbole_ssl.model.intent import IntentPrototypes
from recbole_ssl.trainer import ICLRecTrainer


def prepare(config_dict):
    return build("ICLRec", config_dict)[:4]


def count_e_steps(tiny_config, epochs, **settings):
    config, model, train_data, _ = prepare(
        dict(tiny_config, epochs=epochs, num_intent_clusters=8, **settings)
    )
    calls = []
    estimate = model.intents.estimate

    def recording(encode, *args):
        def encode_in_eval(*batch):
            assert not model.training  # the E-step encodes in eval mode
            return encode(*batch)

        calls.append(len(args[0]))
        return estimate(encode_in_eval, *args)

    model.intents.estimate = recording
    trainer = ICLRecTrainer(config, model)
    trainer.fit(train_data, saved=False)
    trainer.tensorboard.close()
    return calls, model


def test_e_step_runs_once_per_epoch_not_per_batch(tiny_config):
    calls, model = count_e_steps(tiny_config, epochs=2, train_batch_size=32)
    assert calls == [289, 289]  # one per epoch, every user's sequence once
    assert model.training  # back in train mode


@pytest.mark.parametrize(
    "settings, expected",
    [({"intent_warm_up": 1}, 2), ({"intent_frequency": 2}, 2), ({}, 3)],
)
def test_e_step_warm_up_and_frequency(tiny_config, settings, expected):
    calls, _ = count_e_steps(tiny_config, epochs=3, **settings)
    assert len(calls) == expected


def test_e_step_uses_one_sequence_per_user_in_prefix_mode(tiny_config):
    calls, _ = count_e_steps(tiny_config, epochs=1, train_mode="prefix")
    assert calls == [289]


def test_icl_term_is_zero_before_the_first_e_step_and_trains_after(tiny_config):
    config, model, train_data, _ = prepare(dict(tiny_config, num_intent_clusters=8))
    batch = next(iter(train_data))
    assert model.train().calculate_loss(batch).icl_loss.item() == 0
    trainer = ICLRecTrainer(config, model)
    assert trainer.intent_e_step(train_data, 0)
    assert model.training
    assert model.intents.centroids.shape == (8, config["hidden_size"])
    assert (model.intents.user_intents[1:] >= 0).all()  # every real user has an intent
    losses = model.calculate_loss(batch)
    assert losses._fields == ("rec_loss", "cl_loss", "icl_loss")
    assert losses.icl_loss > 0
    model.zero_grad()
    losses.icl_loss.backward()
    for name, param in model.trm_encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    trainer.tensorboard.close()


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_one_epoch_through_the_run_script(tmp_path, train_mode):
    out = run_tiny(
        tmp_path,
        "ICLRec",
        f"--train_mode={train_mode}",
        "--epochs=1",
        "--show_progress=False",
    )
    assert_finite_run(out)
    assert "epoch 0: E-step, 289 sequences into 256 intents" in out.stderr


@pytest.mark.parametrize(
    "option, message",
    [
        (
            "--num_intent_clusters=1000",
            "num_intent_clusters is 1000, but k-means needs between 1 and the number "
            "of training sequences (289) clusters",
        ),
        ("--intent_frequency=0", "intent_frequency must be an integer >= 1, got 0"),
        ("--icl_similarity=l2", "icl_similarity must be one of ['dot', 'cos']"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, option, message):
    out = run_tiny(
        tmp_path,
        "ICLRec",
        "--epochs=1",
        option,
    )
    assert_one_clear_line(out, message)


def separated_table():
    """40 sequence vectors in 5 well-separated groups of 8."""
    noise = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    return torch.eye(5, 4).mul(30).repeat_interleave(8, 0) + noise


def estimate_separated_intents():
    """An E-step over ``separated_table()``: 40 users (ids 1-40), 5 intents."""
    table = separated_table()
    intents = IntentPrototypes(n_users=41, k=5, seed=3)
    intents.estimate(
        lambda seq, _: table[seq[:, 0]],
        torch.arange(40)[:, None],
        torch.ones(40),
        torch.arange(1, 41),
        7,
        torch.device("cpu"),
    )
    return intents


def _e_step_rank(rank):
    intents = estimate_separated_intents()
    return intents.centroids.tolist(), intents.user_intents.tolist()


def test_distributed_e_step_agrees_with_one_process():
    results = on_two_ranks(_e_step_rank)
    assert results[0] == results[1]
    alone = estimate_separated_intents()
    # the ranks gather the users in another order; per user the intents must agree
    # up to the cluster numbering, and the centroids as a set
    centroids = torch.tensor(results[0][0])
    for user in range(1, 41):
        mine = centroids[results[0][1][user]]
        assert torch.allclose(
            mine, alone.centroids[alone.user_intents[user]], atol=1e-4
        )


@pytest.mark.slow
def test_iclrec_with_two_processes(tiny_config):
    run_two_processes("ICLRec", dict(tiny_config, epochs=2, num_intent_clusters=16))
