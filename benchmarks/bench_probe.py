"""Shared pieces of the probe scripts: every setting trains from the same initialisation
on the same first training batches, and the scripts compare the losses."""

import json
import time

import torch
from recbole.utils import init_seed

from recbole_ssl import utils
from recbole_ssl.config import Config

QUIET = {"state": "ERROR", "show_progress": False}


def add_probe_arguments(parser, steps, settings):
    """``--dataset``, ``--data_path``, ``--steps`` and ``--settings`` (JSON objects)."""
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--settings", nargs="*", type=json.loads, default=settings)


def probe_config(model, args, config_dict):
    """``model``'s config on ``args.dataset`` (``args.data_path`` when given)."""
    if args.data_path:
        config_dict = dict(config_dict, data_path=args.data_path)
    return Config(model, args.dataset, config_dict=config_dict)


def first_batches(model, args, config_dict):
    """The first ``args.steps`` training batches of ``model``'s data preparation
    (``config_dict`` plus ``args.data_path``): ``(dataset, batches)``."""
    config = probe_config(model, args, config_dict)
    train_data, _, _ = utils.data_preparation(config, utils.create_dataset(config))
    batches = []
    for batch in train_data:
        batches.append(batch)
        if len(batches) == args.steps:
            break
    return train_data._dataset, batches


def train_from_seed(model_name, args, config_dict, dataset, batches):
    """A freshly seeded model trained with Adam, one step per batch.

    Returns ``(model, losses, seconds)``, ``losses`` a tuple of floats per step (the
    parts of a loss that comes in parts, else one). Autograd's anomaly detection is as
    ``detect_anomaly`` says (off by default), as the plugin's trainers train: RecBole's
    sine.py, imported with its models, turns it on for the whole process, which left
    the losses as they are but multiplied the seconds of these probes until 2026-12-03.
    """
    config = probe_config(model_name, args, config_dict)
    init_seed(config["seed"], True)
    model = config.model_class(config, dataset)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config["learning_rate"],
        weight_decay=config["weight_decay"],
    )
    model.train()
    losses, start = [], time.time()
    with torch.autograd.set_detect_anomaly(bool(config["detect_anomaly"])):
        for batch in batches:
            optimizer.zero_grad()
            loss = model.calculate_loss(batch)
            parts = tuple(loss) if isinstance(loss, tuple) else (loss,)
            sum(parts).backward()
            optimizer.step()
            losses.append(tuple(part.item() for part in parts))
    return model, losses, time.time() - start


def first_and_last_fifth(values):
    """Means of the first and of the last fifth of ``values`` (at least one each)."""
    fifth = max(1, len(values) // 5)
    return sum(values[:fifth]) / fifth, sum(values[-fifth:]) / fifth


def build(model, config_dict, dataset="tiny"):
    """Config, dataset, loaders and a freshly seeded model, as the quick start builds
    them (the tests' ``build``). Returns ``(config, model, train_data, valid_data,
    dataset)``."""
    config = Config(model, dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    data = utils.create_dataset(config)
    train_data, valid_data, _ = utils.data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    built = config.model_class(config, train_data._dataset)
    return config, built, train_data, valid_data, data
