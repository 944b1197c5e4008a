"""recbole_ssl.utils: plugin-first lookups of models, trainers and datasets.

Each lookup tries the plugin first and falls back to RecBole, so one entry point runs
plugin models and RecBole's own models (``--model=GRU4Rec``) alike. The lookups sit
above the models, trainers and data modules (they import them by name, when called);
those import the floor below instead: :mod:`recbole_ssl.errors` (errors and config
checks) and :mod:`recbole_ssl.distributed` (what ranks share). Both are re-exported
here for code written against the earlier single module.
"""

import importlib
import inspect
import os

from recbole.data import data_preparation as recbole_data_preparation
from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_ssl.distributed import (  # noqa: F401 (re-exported)
    broadcast_from_rank0,
    broadcast_object,
    gather_from_all_ranks,
    process_group,
)
from recbole_ssl.errors import (  # noqa: F401 (re-exported)
    ConfigError,
    DatasetNotFoundError,
    ModelNotFoundError,
    RecBoleSSLError,
    check_choice,
    check_integer,
    check_number,
)
from recbole_ssl.paths import SHIPPED_DATA_DIR

RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


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
    user's history (the papers' protocol), which RecBole skips for sequential models,
    and in a distributed run every loader deals one process's batches over the ranks
    (:func:`recbole_ssl.data.dataloader.global_batches`)."""
    from recbole_ssl.data.dataloader import global_batches, history_masked

    train_data, valid_data, test_data = recbole_data_preparation(config, dataset)
    loaders = train_data, history_masked(valid_data), history_masked(test_data)
    return tuple(global_batches(loader) for loader in loaders)
