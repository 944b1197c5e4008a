"""CL4SRec and CoSeRec: loss parts, gradients, the correlation hooks, runs, bad config."""

import math
import re

import pytest
import torch
from conftest import (
    DATA_DIR,
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


def test_loss_has_named_parts_and_reaches_every_parameter(tiny_config):
    config, model, train_data, _ = prepare(
        "CL4SRec", dict(tiny_config, short_augmentations=["mask"], mask_ratio=1.0)
    )
    batch = next(iter(train_data))
    losses = model.train().calculate_loss(batch)
    assert losses._fields == ("rec_loss", "cl_loss")
    assert all(torch.isfinite(part) and part > 0 for part in losses)
    sum(losses).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # the mask token (id n_items) is embedded and learned
    assert model.item_embedding.weight.grad[model.n_items].abs().sum() > 0


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
    assert model.eval().full_sort_predict(batch).shape == (len(batch), model.n_items)
    assert model.item_embedding.num_embeddings == model.n_items + 1


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


def test_fit_builds_the_correlation_and_refreshes_it(tiny_config):
    config, model, train_data, valid_data = prepare(
        "CoSeRec", dict(tiny_config, epochs=2, correlation_warm_up=1)
    )
    assert model.item_correlation is None
    trainer = CoSeRecTrainer(config, model)
    trainer.fit(train_data, valid_data, saved=False)
    trainer.tensorboard.close()
    assert model.item_correlation.hybrid
    assert model.augmenter.correlation is model.item_correlation


def test_cl4srec_defaults_need_no_correlation(tiny_config):
    config, model, train_data, _ = prepare("CL4SRec", dict(tiny_config))
    assert not model.needs_item_correlation
    trainer = CoSeRecTrainer(config, model)
    trainer.fit(train_data, saved=False)
    trainer.tensorboard.close()
    assert model.item_correlation is None


@pytest.mark.parametrize("model", ["CL4SRec", "CoSeRec"])
@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_one_epoch_through_the_run_script(tmp_path, model, train_mode):
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
def test_bad_config_is_one_clear_line(tmp_path, option, message):
    out = run_script(
        "run_recbole_ssl.py",
        "--model=CoSeRec",
        "--dataset=tiny",
        f"--data_path={DATA_DIR}",
        option,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


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
def test_coserec_with_two_processes(tiny_config):
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
