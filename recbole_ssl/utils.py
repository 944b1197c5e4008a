"""recbole_ssl.utils: plugin-first lookups of models, trainers and datasets.

Each lookup tries the plugin first and falls back to RecBole, so one entry point runs
plugin models and RecBole's own models (``--model=GRU4Rec``) alike.
"""

import importlib
import inspect
import os

import torch
from recbole.data import data_preparation as recbole_data_preparation
from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


class RecBoleSSLError(ValueError):
    """A user error (bad name, path or config value): reported in one line by the CLI."""


class ConfigError(RecBoleSSLError):
    """A config key has a value the plugin or RecBole cannot use."""


def check_integer(key, value, minimum):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")


def check_number(key, value, low, high=None, low_open=False):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is a real number
    ``>= low`` (``> low`` with ``low_open``) and, if given, ``<= high``."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if valid:
        valid = value > low if low_open else value >= low
        valid = valid and (high is None or value <= high)
    if not valid:
        if high is not None:
            bound = f"in [{low}, {high}]"
        else:
            bound = f"{'>' if low_open else '>='} {low}"
        raise ConfigError(f"{key} must be a number {bound}, got {value!r}")


def check_choice(key, value, allowed):
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {list(allowed)}, got {value!r}")


class ModelNotFoundError(RecBoleSSLError):
    """No plugin or RecBole model has the requested name."""


class DatasetNotFoundError(RecBoleSSLError):
    """The dataset's atomic files are in none of the searched folders."""


def _plugin_models():
    from recbole.model.abstract_recommender import AbstractRecommender

    module = importlib.import_module("recbole_ssl.model")
    return {
        name: cls
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, AbstractRecommender)
    }


def available_models():
    """Names of the plugin's models and of RecBole's importable models, each sorted."""
    from recbole.model.abstract_recommender import AbstractRecommender

    core = set()
    for package in RECBOLE_MODEL_PACKAGES:
        module = importlib.import_module(f"recbole.model.{package}")
        core.update(
            name
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, AbstractRecommender) and cls.__module__ != "abc"
        )
    plugin = sorted(_plugin_models())
    return plugin, sorted(core - set(plugin))


def get_model(model_name):
    """Return the model class named ``model_name``: the plugin's first, then RecBole's."""
    plugin_models = _plugin_models()
    if model_name in plugin_models:
        return plugin_models[model_name]
    try:
        return recbole_get_model(model_name)
    except (ValueError, AttributeError, ImportError):
        # ImportError: RecBole imports its xgboost/lightgbm models while searching
        plugin, core = available_models()
        raise ModelNotFoundError(
            f"unknown model {model_name!r}. Plugin models: {', '.join(plugin)}. "
            f"RecBole models: {', '.join(core)}"
        ) from None


def get_trainer(model_type, model_name):
    """Return the trainer class for a model.

    The plugin's ``<Model>Trainer`` if there is one, else RecBole's trainer for the
    model, given the plugin's checkpoint and distributed fixes by
    :func:`recbole_ssl.trainer.with_plugin_fixes`.
    """
    trainer_module = importlib.import_module("recbole_ssl.trainer")
    name = f"{model_name}Trainer"
    if hasattr(trainer_module, name):
        return getattr(trainer_module, name)
    core_trainer = recbole_get_trainer(model_type, model_name)
    return trainer_module.with_plugin_fixes(core_trainer)


def check_dataset_exists(config):
    """Fail fast, before RecBole would try (and fail) to download the dataset."""
    from recbole_ssl.config import SHIPPED_DATA_DIR

    dataset = config["dataset"]
    searched = [os.path.abspath(config["data_path"])]
    shipped = str(SHIPPED_DATA_DIR / dataset)
    if shipped not in searched:
        searched.append(shipped)
    parts = config["benchmark_filename"]  # RecBole's pre-split <dataset>.<part>.inter
    names = (
        [f"{dataset}.{part}.inter" for part in parts] if parts else [f"{dataset}.inter"]
    )
    missing = [
        n for n in names if not os.path.isfile(os.path.join(config["data_path"], n))
    ]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {dataset!r} not found: no {', '.join(missing)} in "
            + " or ".join(searched)
            + ". Convert raw data with `python -m recbole_ssl.data.convert` or set "
            "data_path to the folder that holds the dataset's folder"
        )


def create_dataset(config):
    """Create the dataset: the plugin's ``<Model>Dataset`` or its sequential dataset
    (regimes, history masking) first, then RecBole's choice for other model types."""
    check_dataset_exists(config)
    data_module = importlib.import_module("recbole_ssl.data.dataset")
    dataset_class = getattr(data_module, f"{config['model']}Dataset", None)
    if dataset_class is None and config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        core_module = importlib.import_module("recbole.data.dataset")
        if not hasattr(core_module, f"{config['model']}Dataset"):
            dataset_class = data_module.SequentialDataset
    if dataset_class is None:
        from recbole.data import create_dataset as recbole_create_dataset

        return recbole_create_dataset(config)
    return dataset_class(config)


def data_preparation(config, dataset):
    """RecBole's split and dataloaders; sequential full-sort evaluation then masks each
    user's history (the papers' protocol), which RecBole skips for sequential models."""
    from recbole_ssl.data.dataloader import history_masked

    train_data, valid_data, test_data = recbole_data_preparation(config, dataset)
    return train_data, history_masked(valid_data), history_masked(test_data)


def process_group():
    """``(rank, world_size, device for collectives)`` in a distributed run, else None.

    NCCL exchanges CUDA tensors, gloo CPU ones.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    return dist.get_rank(), dist.get_world_size(), device


def broadcast_from_rank0(tensor):
    """``tensor`` as rank 0 has it, in a distributed run; ``tensor`` itself otherwise.

    For what one rank computes for all (item correlations, cluster centroids), so no
    rank silently uses its own copy.
    """
    group = process_group()
    if group is None:
        return tensor
    shared = tensor.detach().to(group[2]).contiguous()
    torch.distributed.broadcast(shared, src=0)
    return shared.to(tensor.device)


def broadcast_object(value):
    """A picklable ``value`` as rank 0 has it, in a distributed run (e.g. a file name
    holding the local time, on which ranks may disagree by a second)."""
    if process_group() is None:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_from_all_ranks(tensor):
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (``tensor`` itself
    if not distributed). Ranks may hold different numbers of rows."""
    group = process_group()
    if group is None:
        return tensor
    dist, device = torch.distributed, group[2]
    local = tensor.detach().to(device).contiguous()
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(group[1])]
    dist.all_gather(sizes, torch.tensor([local.size(0)], device=device))
    largest = int(max(size.item() for size in sizes))
    padded = local.new_zeros(largest, *local.shape[1:])
    padded[: local.size(0)] = local
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    parts = [
        part[: int(size.item())] for part, size in zip(gathered, sizes, strict=True)
    ]
    return torch.cat(parts).to(tensor.device)
