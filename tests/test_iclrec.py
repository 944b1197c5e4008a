"""ICLRec: the E-step hook, the ICL term by hand, runs, distributed intents, bad
config."""

import math

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
    """Train ``epochs`` epochs; return the E-steps' inputs, their epochs and the model.

    Each E-step is recorded as ``(item_seq, item_seq_len, user_ids)`` as the trainer
    passed them to :meth:`IntentPrototypes.estimate`.
    """
    config, model, train_data, _ = prepare(
        dict(tiny_config, epochs=epochs, num_intent_clusters=8, **settings)
    )
    calls = []
    estimate = model.intents.estimate

    def recording(encode, *args):
        def encode_in_eval(*batch):
            assert not model.training  # the E-step encodes in eval mode
            return encode(*batch)

        calls.append(tuple(arg.clone() for arg in args[:3]))
        return estimate(encode_in_eval, *args)

    model.intents.estimate = recording
    trainer = ICLRecTrainer(config, model)
    epochs_run = []
    e_step = trainer.intent_e_step

    def recording_epoch(data, epoch_idx):
        ran = e_step(data, epoch_idx)
        if ran:
            epochs_run.append(epoch_idx)
        return ran

    trainer.intent_e_step = recording_epoch
    trainer.fit(train_data, saved=False)
    trainer.tensorboard.close()
    return calls, epochs_run, model, train_data


def test_e_step_runs_once_per_epoch_not_per_batch(tiny_config):
    calls, epochs_run, model, _ = count_e_steps(
        tiny_config, epochs=2, train_batch_size=32
    )
    assert epochs_run == [0, 1]  # at the start of each epoch, not per batch
    for _, _, users in calls:  # every user's sequence, once
        assert sorted(users.tolist()) == list(range(1, 290))
    assert model.training  # back in train mode


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"intent_warm_up": 1}, [1, 2]),
        ({"intent_frequency": 2}, [0, 2]),
        ({}, [0, 1, 2]),
    ],
)
def test_e_step_warm_up_and_frequency(tiny_config, settings, expected):
    calls, epochs_run, _, _ = count_e_steps(tiny_config, epochs=3, **settings)
    assert epochs_run == expected
    assert len(calls) == len(expected)


def test_e_step_uses_each_users_longest_prefix_in_prefix_mode(tiny_config):
    calls, _, _, train_data = count_e_steps(tiny_config, epochs=1, train_mode="prefix")
    [(item_seq, item_seq_len, users)] = calls
    assert sorted(users.tolist()) == list(range(1, 290))  # one sequence per user
    # by hand from the prefix rows: a user's row with the latest target (the last
    # such row on a tie) holds the most items before it
    feat = train_data._dataset.inter_feat
    latest = {}
    for row, (user, time) in enumerate(
        zip(feat["user_id"].tolist(), feat["timestamp"].tolist(), strict=True)
    ):
        if user not in latest or time >= latest[user][0]:
            latest[user] = (time, row)
    for seq, length, user in zip(item_seq, item_seq_len, users.tolist(), strict=True):
        row = latest[user][1]
        assert int(length) == int(feat["item_length"][row])
        assert torch.equal(seq, feat["item_id_list"][row])


def test_no_icl_before_the_first_e_step_then_each_user_gets_its_nearest_intent(
    tiny_config,
):
    config, model, train_data, _ = prepare(dict(tiny_config, num_intent_clusters=8))
    batch = next(iter(train_data))
    losses = model.train().calculate_loss(batch)
    assert losses._fields == ("rec_loss", "cl_loss", "icl_loss")
    assert losses.icl_loss.item() == 0  # no intents yet: the term is exactly zero
    trainer = ICLRecTrainer(config, model)
    assert trainer.intent_e_step(train_data, 0)
    assert model.training
    # Eq. 12: a user's intent is the cluster of its sequence's mean representation,
    # i.e. (after k-means) the nearest centroid; recomputed here in eval mode
    feat = train_data._dataset.inter_feat
    users = feat[model.USER_ID]
    with torch.no_grad():
        reps = model.eval().intent_representation(
            feat[model.ITEM_SEQ], feat[model.ITEM_SEQ_LEN]
        )
    centroids = model.intents.centroids
    assert centroids.shape == (8, config["hidden_size"])
    distances = ((reps[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)  # [U, K]
    assigned = distances.gather(1, model.intents.user_intents[users][:, None])[:, 0]
    assert torch.allclose(assigned, distances.min(1).values, rtol=1e-4, atol=1e-5)
    assert len(set(model.intents.user_intents[users].tolist())) > 1
    # smoke: after it the ICL term is positive and trains the whole encoder
    losses = model.train().calculate_loss(batch)
    assert losses.icl_loss > 0
    model.zero_grad()
    losses.icl_loss.backward()
    for name, param in model.trm_encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    trainer.tensorboard.close()


# A hand-made ICL case: three users of a batch, two-dimensional view vectors and three
# intent centroids. The encoder's views are replaced by these vectors, so the expected
# ICL term follows from the paper's Eqs. 15-17 by hand (``hand_icl_view``).
CENTROIDS = [[1.0, 0.0], [0.0, 1.0], [-1.0, -0.5]]
VIEW_MEANS = (  # the mean representation of view 1 and of view 2 of each user
    [[2.0, 0.5], [0.5, 1.0], [-1.0, 2.0]],
    [[1.0, 1.0], [0.0, -1.0], [1.5, 0.5]],
)
VIEW_LENGTHS = ([2, 1, 2], [1, 2, 2])


def hand_made_views():
    """Encoder outputs ``[6, 2, 2]`` (view 1 of the 3 users, then view 2) and lengths
    whose mean over the real positions is ``VIEW_MEANS``; padding holds junk, which
    the mean must skip (Sec. 4.1.2's mean over the sequence's positions)."""
    rows = []
    for means, lengths in zip(VIEW_MEANS, VIEW_LENGTHS, strict=True):
        for (x, y), length in zip(means, lengths, strict=True):
            if length == 2:  # two real positions around the mean
                rows.append([[x + 0.5, y - 0.25], [x - 0.5, y + 0.25]])
            else:  # one real position, then padding
                rows.append([[x, y], [9.0, -9.0]])
    return torch.tensor(rows), torch.tensor(VIEW_LENGTHS[0] + VIEW_LENGTHS[1])


def similarity(a, c, kind):
    dot = a[0] * c[0] + a[1] * c[1]
    return dot / (math.hypot(*a) * math.hypot(*c)) if kind == "cos" else dot


def hand_icl_view(vectors, intent_of, fnm, kind, temperature):
    """Eq. 16, or Eq. 17 with FNM, for one view, averaged over the batch's users.

    User ``u`` (intent ``intent_of[u]``) scores its own intent's centroid against
    the centroids of the batch's users (its own included); FNM leaves out the other
    users of the same intent.
    """
    total = 0.0
    for u, vector in enumerate(vectors):
        kept = [
            w
            for w in range(len(vectors))
            if w == u or not (fnm and intent_of[w] == intent_of[u])
        ]
        scores = [
            similarity(vector, CENTROIDS[intent_of[w]], kind) / temperature
            for w in kept
        ]
        positive = similarity(vector, CENTROIDS[intent_of[u]], kind) / temperature
        total += -positive + math.log(sum(math.exp(score) for score in scores))
    return total / len(vectors)


def hand_icl(intent_of, fnm, kind, temperature):
    """Eq. 15: the sum over the two views."""
    return sum(
        hand_icl_view(means, intent_of, fnm, kind, temperature) for means in VIEW_MEANS
    )


def iclrec_on_three_users(tiny_config, **settings):
    """An ICLRec and a batch of three of its users, whose views are hand-made."""
    _, model, train_data, _ = prepare(dict(tiny_config, **settings))
    batch = next(iter(train_data))[torch.arange(3)]
    views, lengths = hand_made_views()

    def encode_with_hand_made_views(interaction):
        return model.encode(interaction[model.ITEM_SEQ]), views, lengths

    model.encode_with_views = encode_with_hand_made_views
    return model.eval(), batch


def model_icl(model, batch, intent_of):
    """The model's weighted ICL term with ``intent_of[u]`` the intent of batch user u.

    The E-step's result is set by hand: the centroids, and a user-to-intent table
    indexed by user id (every other user has none, -1).
    """
    model.intents.centroids = torch.tensor(CENTROIDS)
    table = torch.full_like(model.intents.user_intents, -1)
    table[batch[model.USER_ID]] = torch.tensor(intent_of)
    model.intents.user_intents = table
    with torch.no_grad():
        return model.calculate_loss(batch).icl_loss.item()


def test_each_view_is_contrasted_with_its_users_intent(tiny_config):
    model, batch = iclrec_on_three_users(
        tiny_config, icl_weight=0.5, icl_similarity="cos", icl_temperature=0.2
    )
    users = batch[model.USER_ID].tolist()
    assert users != [0, 1, 2] and len(set(users)) == 3  # ids, not batch rows
    table, permuted = [0, 0, 1], [1, 0, 0]  # the same intents, on other users
    # the defaults: cosine, temperature 0.2, FNM on
    expected = 0.5 * hand_icl(table, True, "cos", 0.2)
    expected_permuted = 0.5 * hand_icl(permuted, True, "cos", 0.2)
    assert abs(expected - expected_permuted) > 0.1
    assert model_icl(model, batch, table) == pytest.approx(expected, rel=1e-5)
    assert model_icl(model, batch, permuted) == pytest.approx(
        expected_permuted, rel=1e-5
    )


@pytest.mark.parametrize("fnm", [True, False])
def test_fnm_leaves_out_the_centroids_of_the_anchors_intent(tiny_config, fnm):
    # the paper's similarity: dot product, temperature 1
    model, batch = iclrec_on_three_users(
        tiny_config, fnm=fnm, icl_weight=0.1, icl_similarity="dot", icl_temperature=1.0
    )
    table = [
        0,
        0,
        1,
    ]  # users 0 and 1 share intent 0: each is a false negative of the other
    with_fnm, without = hand_icl(table, True, "dot", 1.0), hand_icl(
        table, False, "dot", 1.0
    )
    assert without - with_fnm > 0.1  # FNM drops a copy of the positive from the sum
    expected = with_fnm if fnm else without
    assert model_icl(model, batch, table) == pytest.approx(0.1 * expected, rel=1e-5)


def test_icl_is_the_sum_of_both_views_losses(tiny_config):
    """Eq. 15 sums the two views' losses (the authors' code averages them)."""
    model, batch = iclrec_on_three_users(
        tiny_config, icl_weight=0.1, icl_similarity="cos", icl_temperature=0.2
    )
    table = [0, 0, 1]
    first, second = (
        hand_icl_view(means, table, True, "cos", 0.2) for means in VIEW_MEANS
    )
    assert abs(first - second) > 0.1  # the two views differ
    icl = model_icl(model, batch, table)
    assert icl == pytest.approx(0.1 * (first + second), rel=1e-5)
    assert icl != pytest.approx(0.1 * (first + second) / 2, rel=1e-2)


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_smoke_one_epoch_through_the_run_script(tmp_path, train_mode):
    """Smoke, on purpose: the command line runs, with the E-step logged."""
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
def test_bad_config_is_one_clear_line(tiny_here, option, message):
    out = tiny_here("ICLRec", "--epochs=1", option)
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
def test_smoke_iclrec_with_two_processes(tiny_config):
    """Smoke, on purpose: two ranks run; their shared E-step is pinned above."""
    run_two_processes("ICLRec", dict(tiny_config, epochs=2, num_intent_clusters=16))
