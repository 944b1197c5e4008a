"""CL4SRec and CoSeRec: the NT-Xent pairing by hand, the mask token, the correlation
hooks, runs, bad config."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DATA_DIR,
    assert_one_clear_line,
    free_port,
    logged_test_result,
    on_two_ranks,
    run_script,
)
from recbole.utils import init_seed

from recbole_ssl.config import Config
from recbole_ssl.data.correlation import ItemCorrelation
from recbole_ssl.model import CL4SRec, CoSeRec
from recbole_ssl.quick_start import run
from recbole_ssl.trainer import CoSeRecTrainer
from recbole_ssl.utils import (
    ConfigError,
    broadcast_from_rank0,
    create_dataset,
    data_preparation,
)


def prepare(model, config_dict):
    config = Config(model, "tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = config.model_class(config, train_data._dataset)
    return config, model, train_data, valid_data


def test_mask_only_views_reach_the_item_table_through_the_mask_token_only(
    tiny_config,
):
    _, model, train_data, _ = prepare(
        "CL4SRec",
        dict(
            tiny_config,
            short_augmentations=["mask"],
            long_augmentations=["mask"],
            mask_ratio=1.0,
        ),
    )
    batch = next(iter(train_data))
    losses = model.train().calculate_loss(batch)
    assert losses._fields == ("rec_loss", "cl_loss")
    mask_row = model.n_items  # the dedicated mask token, never a real item
    # every item of every view is masked: the contrastive term sees the item table
    # through the mask token's row alone
    losses.cl_loss.backward(retain_graph=True)
    grad = model.item_embedding.weight.grad
    assert grad[mask_row].abs().sum() > 0
    assert grad[:mask_row].abs().sum() == 0
    # the next-item term never sees or scores the mask token
    model.zero_grad()
    losses.rec_loss.backward(retain_graph=True)
    assert model.item_embedding.weight.grad[mask_row].abs().sum() == 0
    # smoke: together they reach every parameter
    model.zero_grad()
    sum(losses).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def hand_nt_xent(reps, temperature):
    """NT-Xent (CoSeRec Eq. 14) with cosine similarity over ``temperature``, averaged
    over the 2N anchors (Algorithm 1, line 15): row ``i``'s positive is row
    ``(i + N) mod 2N``, its negatives every other row but itself."""
    count = len(reps)
    unit = [rep / rep.norm() for rep in reps]
    total = 0.0
    for i in range(count):
        scores = [
            float(unit[i] @ unit[j]) / temperature for j in range(count) if j != i
        ]
        positive = float(unit[i] @ unit[(i + count // 2) % count]) / temperature
        total += -positive + math.log(sum(math.exp(score) for score in scores))
    return total / count


def test_each_view_is_paired_with_its_own_sequence(tiny_config):
    _, model, train_data, _ = prepare(
        "CL4SRec",
        dict(
            tiny_config,
            short_augmentations=["mask"],
            long_augmentations=["mask"],
            mask_ratio=0.0,  # the identity: each view is its sequence
            cl_weight=0.1,
            cl_temperature=0.2,
            cl_similarity="cos",
            cl_representation="concat",
        ),
    )
    batch = next(iter(train_data))[torch.arange(4)]
    model.eval()  # no dropout: a sequence and its views encode alike
    with torch.no_grad():
        output = model.encode(batch[model.ITEM_SEQ]).double()  # [4, L, H]
    # the paper's concatenation of all positions, most recent first, zero padded
    width = output.size(1) * output.size(2)
    reps = []
    for row, length in zip(output, batch[model.ITEM_SEQ_LEN].tolist(), strict=True):
        rep = row[:length].flip(0).flatten()
        reps.append(F.pad(rep, (0, width - rep.numel())))
    assert len(set(batch[model.ITEM_SEQ_LEN].tolist())) > 1  # lengths differ
    order = [1, 2, 3, 0]
    paired = hand_nt_xent(reps + reps, 0.2)  # view u + N is sequence u's
    shuffled = hand_nt_xent(reps + [reps[u] for u in order], 0.2)
    assert shuffled - paired > 0.5
    with torch.no_grad():
        cl_loss = model.calculate_loss(batch).cl_loss.item()
    assert cl_loss == pytest.approx(0.1 * paired, rel=1e-4)

    augmenter = model.augmenter

    def second_views_permuted(seq, lengths):
        views, view_len = augmenter(seq, lengths)
        rows = torch.tensor([0, 1, 2, 3] + [4 + u for u in order])
        return views[rows], view_len[rows]

    model.augmenter = second_views_permuted
    with torch.no_grad():
        cl_loss = model.calculate_loss(batch).cl_loss.item()
    assert cl_loss == pytest.approx(0.1 * shuffled, rel=1e-4)


def test_contrastive_part_is_weighted_by_lambda(tiny_config):
    parts = []
    for weight in (0.1, 0.3):
        _, model, train_data, _ = prepare(
            "CL4SRec", dict(tiny_config, cl_weight=weight)
        )
        init_seed(2020, True)
        parts.append(model.eval().calculate_loss(next(iter(train_data))))
    assert parts[0].rec_loss.item() == pytest.approx(parts[1].rec_loss.item())
    assert parts[1].cl_loss.item() == pytest.approx(
        3 * parts[0].cl_loss.item(), rel=1e-5
    )


def test_training_never_changes_the_stored_sequences(tiny_config):
    config, model, train_data, _ = prepare("CoSeRec", dict(tiny_config, epochs=2))
    stored = train_data._dataset.inter_feat[model.ITEM_SEQ].clone()
    trainer = CoSeRecTrainer(config, model)
    trainer.fit(train_data, verbose=False, saved=False)
    trainer.tensorboard.close()
    assert torch.equal(train_data._dataset.inter_feat[model.ITEM_SEQ], stored)


def test_full_sort_scores_real_items_only(tiny_config):
    _, model, _, valid_data = prepare("CoSeRec", tiny_config)
    batch = next(iter(valid_data))[0]
    model.eval()
    assert model.item_embedding.num_embeddings == model.n_items + 1
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        # by hand: the last real position's output against every real item's row
        output = model.encode(batch[model.ITEM_SEQ])
        last = output[torch.arange(len(batch)), batch[model.ITEM_SEQ_LEN] - 1]
        expected = last @ model.item_embedding.weight[: model.n_items].t()
        model.item_embedding.weight[model.n_items] = 1e3  # the mask token's row
        again = model.full_sort_predict(batch)
    assert scores.shape == (len(batch), model.n_items)
    assert torch.allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(scores, again)  # the mask token is never scored


def test_hybrid_switches_on_at_the_warm_up_epoch(tiny_config):
    config, model, train_data, _ = prepare(
        "CoSeRec", dict(tiny_config, correlation_warm_up=2)
    )
    trainer = CoSeRecTrainer(config, model)
    trainer.build_item_correlation(train_data._dataset)
    correlation = model.item_correlation
    memory = correlation.memory_neighbours.clone()
    for epoch in (0, 1):
        trainer.refresh_item_correlation(epoch)
        assert not correlation.hybrid and torch.equal(correlation.neighbours, memory)
    trainer.refresh_item_correlation(2)
    assert correlation.hybrid and not torch.equal(correlation.neighbours, memory)
    trainer.tensorboard.close()


def test_smoke_fit_builds_the_correlation_and_refreshes_it(tiny_config):
    """Smoke, on purpose: ``fit`` wires the hooks; the switch itself is pinned by
    test_hybrid_switches_on_at_the_warm_up_epoch, the tables by test_correlation."""
    config, model, train_data, valid_data = prepare(
        "CoSeRec", dict(tiny_config, epochs=2, correlation_warm_up=1)
    )
    assert model.item_correlation is None
    trainer = CoSeRecTrainer(config, model)
    trainer.fit(train_data, valid_data, saved=False)
    trainer.tensorboard.close()
    assert model.item_correlation.hybrid
    assert model.augmenter.correlation is model.item_correlation


def test_smoke_cl4srec_defaults_train_without_a_correlation(tiny_config):
    """Smoke, on purpose: crop/mask/reorder train without building a correlation."""
    config, model, train_data, _ = prepare("CL4SRec", dict(tiny_config))
    assert not model.needs_item_correlation
    trainer = CoSeRecTrainer(config, model)
    trainer.fit(train_data, saved=False)
    trainer.tensorboard.close()
    assert model.item_correlation is None


@pytest.mark.parametrize("model", ["CL4SRec", "CoSeRec"])
@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_smoke_one_epoch_through_the_run_script(tmp_path, model, train_mode):
    """Smoke, on purpose: the command line runs and logs both loss parts."""
    out = run_script(
        "run_recbole_ssl.py",
        f"--model={model}",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        f"--train_mode={train_mode}",
        "--epochs=1",
        "--correlation_warm_up=0",  # CoSeRec: the hybrid from the first epoch
        "--show_progress=False",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    values = list(logged_test_result(out.stderr).values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    assert re.search(r"rec_loss: [0-9.]+, cl_loss: [0-9.]+", out.stderr)
    if model == "CoSeRec":
        assert "epoch 0: hybrid item correlation" in out.stderr


@pytest.mark.parametrize(
    "option, message",
    [
        ("--mask_ratio=1.5", "mask_ratio must be a number in [0, 1], got 1.5"),
        (
            "--long_augmentations=['crop','shuffle']",
            "long_augmentations has unknown operator(s) ['shuffle']",
        ),
        ("--augment_threshold=0", "augment_threshold must be an integer >= 1, got 0"),
        ("--cl_representation=sum", "cl_representation must be one of"),
        ("--correlation_topk=0", "correlation_topk must be an integer >= 1, got 0"),
        ("--cl_temperature=0", "cl_temperature must be a number > 0, got 0"),
    ],
)
def test_bad_config_is_one_clear_line(tiny_here, option, message):
    assert_one_clear_line(tiny_here("CoSeRec", option), message)


def test_bad_config_fails_before_loading_data():
    with pytest.raises(ConfigError, match="crop_ratio"):
        Config("CL4SRec", "no-such-dataset", config_dict={"crop_ratio": 2})


def _broadcast_rank(rank):
    return broadcast_from_rank0(torch.full((3,), float(rank + 1))).tolist()


def test_broadcast_gives_every_rank_rank_0s_tensor():
    results = on_two_ranks(_broadcast_rank)
    assert results == {0: [1.0, 1.0, 1.0], 1: [1.0, 1.0, 1.0]}
    assert broadcast_from_rank0(torch.ones(2)).tolist() == [1.0, 1.0]  # no group


@pytest.mark.slow
def test_smoke_coserec_with_two_processes(tiny_config):
    """Smoke, on purpose: two ranks run; what they share is pinned by the rank tests."""
    result = run(
        "CoSeRec",
        "tiny",
        config_dict=dict(tiny_config, epochs=2, correlation_warm_up=1),
        nproc=2,
        port=free_port(),
    )
    values = list(result["test_result"].values())
    assert len(values) == 6 and all(math.isfinite(v) for v in values)


def test_models_are_found_by_name():
    assert Config("CoSeRec", "tiny", config_dict={"data_path": str(DATA_DIR)})[
        "short_augmentations"
    ] == ["substitute", "insert", "mask"]
    assert CoSeRec.__mro__[1] is CL4SRec


class _FakeModel:
    """What ContrastiveTrainer's correlation hooks use of a model."""

    item_correlation = None

    def set_item_correlation(self, correlation):
        self.item_correlation = correlation


def _correlation_rank(rank):
    import logging
    from types import SimpleNamespace
    from unittest import mock

    from recbole_ssl.data.correlation import ItemCorrelation
    from recbole_ssl.trainer.contrastive import ContrastiveTrainer

    # each rank sees different interactions and different embeddings
    users = [0, 0, 1, 1, 2, 2] if rank == 0 else [0, 0, 1, 1, 2, 2, 3, 3]
    items = [1, 2, 2, 3, 4, 5] if rank == 0 else [1, 5, 2, 4, 3, 5, 1, 3]
    trainer = SimpleNamespace(
        config={"seed": 0, "local_rank": rank},
        correlation_topk=1,
        correlation_warm_up=0,
        device=torch.device("cpu"),
        logger=logging.getLogger("test"),
        model=_FakeModel(),
    )
    own = ItemCorrelation.from_pairs(users, items, 6)
    with mock.patch.object(ItemCorrelation, "from_dataset", return_value=own):
        ContrastiveTrainer.build_item_correlation(trainer, dataset=None)
    memory = trainer.model.item_correlation.neighbours.tolist()
    trainer.model.item_weight = torch.randn(
        6, 4, generator=torch.Generator().manual_seed(rank)
    )
    ContrastiveTrainer.refresh_item_correlation(trainer, epoch_idx=0)
    return memory, trainer.model.item_correlation.neighbours.tolist()


def test_every_rank_uses_rank_0s_correlation_tables():
    results = on_two_ranks(_correlation_rank)
    assert results[0] == results[1]
    rank0_memory = ItemCorrelation.from_pairs(
        [0, 0, 1, 1, 2, 2], [1, 2, 2, 3, 4, 5], 6
    ).neighbours.tolist()
    assert results[0][0] == rank0_memory
