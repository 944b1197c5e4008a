"""recbole_ssl.quick_start: train and evaluate any plugin or RecBole model in one call.

The plugin's own quick start: ``recbole.quick_start`` imports ray at import time, which
needs setuptools' ``pkg_resources``, and its lookups only know RecBole's models.
"""

import logging
import os
import signal
import sys
import threading
from logging import getLogger

import colorlog
import torch.distributed as dist
import yaml
from recbole.utils import get_environment, init_seed, set_color
from recbole.utils.logger import RemoveColorFilter, log_colors_config
from recbole.utils.utils import get_local_time

from recbole_ssl.checkpoint import LAST, load_checkpoint
from recbole_ssl.config import Config
from recbole_ssl.errors import ConfigError, RecBoleSSLError
from recbole_ssl.record import recording
from recbole_ssl.utils import create_dataset, data_preparation, get_trainer

_LOG_HANDLER_TAG = "_recbole_ssl"


def check_config_file(path):
    """A config file must exist and parse as YAML; errors name the file and line."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            yaml.load(f, Loader=yaml.FullLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def build_config(model=None, dataset=None, config_file_list=None, config_dict=None):
    """``Config(...)``, with any error in the given settings raised as a ``ConfigError``."""
    for path in config_file_list or []:
        check_config_file(path)
    try:
        return Config(model, dataset, config_file_list, config_dict)
    except RecBoleSSLError:
        raise
    except (ValueError, KeyError, TypeError, NotImplementedError, SyntaxError) as e:
        raise ConfigError(f"invalid configuration: {e}") from e


def check_command_line(
    model, dataset, config_file_list, options, resume=None, evaluate=None
):
    """Raise a :class:`ConfigError` naming each ``--key=value`` of the command line
    that no configuration of this run knows (RecBole would ignore it silently), with
    the closest known key. ``options``: the command line's own option names; with
    ``resume`` or ``evaluate`` the run's settings come from that checkpoint."""
    config_dict = None
    if resume:
        model, dataset, config_dict, _ = resume_settings(resume)
    elif evaluate:
        model, dataset, config_dict, _ = checkpoint_settings(evaluate)
    config = build_config(model, dataset, config_file_list, config_dict)
    unknown = config.unknown_command_line_keys(options)
    if unknown:
        named = "; ".join(
            f"--{key}" + (f" (did you mean --{close}?)" if close else "")
            for key, close in unknown
        )
        raise ConfigError(
            f"unknown config key on the command line: {named}. A key of your own "
            "goes in a YAML file given with --config_files"
        )


def close_log_handlers():
    """Remove and close the handlers :func:`init_logger` added (the last run's log
    file and console stream)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if hasattr(h, _LOG_HANDLER_TAG)]:
        root.removeHandler(handler)
        handler.close()


def init_logger(config):
    """Log to the console and to ``<log_dir>/<model>/<model>-<dataset>-<time>.log``.

    RecBole's ``init_logger`` fixes the folder to ``./log`` and, called twice in one
    process, keeps writing to the first run's file; this one replaces its own handlers.
    """
    level = getattr(logging, str(config["state"] or "INFO").upper(), logging.INFO)
    log_dir = os.path.join(config["log_dir"] or "log", config["model"])
    os.makedirs(log_dir, exist_ok=True)
    log_file = os.path.join(
        log_dir, f"{config['model']}-{config['dataset']}-{get_local_time()}.log"
    )
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s")
    )
    file_handler.addFilter(RemoveColorFilter())
    stream_handler = logging.StreamHandler()
    stream_handler.setFormatter(
        colorlog.ColoredFormatter(
            "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s",
            "%d %b %H:%M",
            log_colors=log_colors_config,
        )
    )
    close_log_handlers()
    root = logging.getLogger()
    for handler in (file_handler, stream_handler):
        setattr(handler, _LOG_HANDLER_TAG, True)
        handler.setLevel(level)
        root.addHandler(handler)
    root.setLevel(level)
    return log_file


# where a run's processes meet: a resumed run takes them from its own command line
DISTRIBUTED_KEYS = ("local_rank", "world_size", "ip", "port", "nproc", "offset")


def resume_settings(resume, config_dict=None):
    """``(model, dataset, config_dict, checkpoint)`` to resume the run whose last
    checkpoint is ``resume``: the settings the run was given (from the checkpoint),
    updated by ``config_dict`` (and, as always, the command line), with ``resume``.

    Raises:
        ConfigError: ``resume`` is no checkpoint, or not a run's last checkpoint.
    """
    checkpoint = load_checkpoint(resume, "resume")
    if checkpoint.get("kind") != LAST or "external_config" not in checkpoint:
        raise ConfigError(
            f"resume: {resume} holds one epoch's weights, not a run's state; resume "
            "from the run's '-last.pth' checkpoint beside it"
        )
    settings = given_settings(checkpoint)
    settings.update(config_dict or {})
    settings["resume"] = str(resume)
    saved = checkpoint["config"]
    return saved["model"], saved["dataset"], settings, checkpoint


def run_recbole_ssl(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    queue=None,
    resume=None,
):
    """Train ``model`` on ``dataset``, pick the best epoch on validation, test it.

    Args:
        model (str or class): a plugin or RecBole model name, or a model class.
        dataset (str): the dataset name.
        config_file_list (list of str): YAML config files.
        config_dict (dict): parameters that override the files.
        saved (bool): save the best model and test it (else test the last epoch).
        queue: the result goes here from rank 0 in multi-process runs.
        resume (str): a run's last checkpoint (``...-last.pth``; also the ``resume``
            key of ``config_dict``): continue that run exactly, with its settings
            (``model`` and ``dataset`` may be None), and in its run record.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result`` and
        ``test_result``, as RecBole's ``run_recbole``.
    """
    resume = resume or (config_dict or {}).get("resume")
    resumes = None
    if resume:
        model, dataset, config_dict, checkpoint = resume_settings(resume, config_dict)
        resumes = {"checkpoint": resume, "record": checkpoint.get("record")}
    config = build_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    log_file = init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    with recording(config, "train", "run_recbole_ssl", log_file, resumes) as record:
        if record is not None:
            logger.info(f"run record: {record.path}")
        best_valid_score, best_valid_result, test_result = _train_and_test(
            config, record, saved, verbose=True, logger=logger
        )

    logger.info(
        "The running environment of this training is as follows:\n"
        + get_environment(config).draw()
    )
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
    if not config["single_spec"]:
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


def _train_and_test(config, record, saved, verbose=True, logger=None, show=None):
    """Data, model, trainer; fit, test, and the record's end. Returns ``(best valid
    score, best valid result, test result)``."""
    dataset = create_dataset(config)
    if logger:
        logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    if logger:
        logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.run_record = record
    if config["resume"]:
        trainer.resume(config["resume"])
    logger = logger or getLogger()
    logger.info(f"last checkpoint (resume=...): {trainer.last_model_file}")
    show = config["show_progress"] if show is None else show
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=show
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show)
    if record is not None:
        record_groups(config, trainer.model, test_data, test_result, record, logger)
        record.finish(
            best_valid_result,
            test_result,
            tested="best" if saved else "last",
            **(trainer.checkpoint_files() if saved else {}),
        )
    return best_valid_score, best_valid_result, test_result


def record_groups(config, model, test_data, test_result, record, logger):
    """The tested model's test metrics by user group (``eval_groups`` groups of equal
    size by training length, :mod:`recbole_ssl.groups`) into the run record: one more
    full-sort pass over the test users. Not in distributed runs (each rank holds a share
    of the users) nor where the dataset keeps no histories; a disagreement with the
    evaluator's figures is logged and nothing recorded."""
    from recbole_ssl.trainer.user_groups import disagreement, group_metrics

    n_groups = config["eval_groups"]
    if not n_groups or (dist.is_available() and dist.is_initialized()):
        return
    try:
        groups, overall = group_metrics(
            model, test_data, n_groups, list(config["topk"])
        )
    except RecBoleSSLError as e:
        logger.warning(f"no metrics by user group: {e}")
        return
    problem = disagreement(overall, test_result)
    if problem:
        logger.warning(f"no metrics by user group: {problem}")
        return
    record.data["groups"] = {"by": "train_length", "groups": groups}


def exit_on_sigterm():
    """SIGTERM ends the process through Python's exit path (``SystemExit(143)``), so
    the run record says 'interrupted' and no output is left half-written."""

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)


def _run_rank(rank, model, dataset, config_file_list, config_dict, queue):
    exit_on_sigterm()
    config_dict = dict(config_dict, local_rank=rank)
    run_recbole_ssl(model, dataset, config_file_list, config_dict, queue=queue)


def run(
    model,
    dataset,
    config_file_list=None,
    config_dict=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
    resume=None,
):
    """One process, or ``nproc`` processes of RecBole's distributed mode (gloo on the
    CPU, nccl on CUDA); returns rank 0's result dict. ``resume``: see
    :func:`run_recbole_ssl`."""
    if resume:
        model, dataset, config_dict, _ = resume_settings(resume, config_dict)
    if nproc == 1 and world_size <= 0:
        return run_recbole_ssl(model, dataset, config_file_list, config_dict, saved)
    import torch.multiprocessing as mp

    # a bad model, dataset or key fails here, once, not in every spawned process
    build_config(model, dataset, config_file_list, config_dict)
    config_dict = dict(
        config_dict or {},
        world_size=nproc if world_size == -1 else world_size,
        ip=ip,
        port=str(port),
        nproc=nproc,
        offset=group_offset,
    )
    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.spawn(
        _run_rank,
        args=(model, dataset, config_file_list, config_dict, queue),
        nprocs=nproc,
        join=False,
    )
    try:
        while not context.join():
            pass
    except BaseException:
        # Ctrl-C or SIGTERM here: each rank gets SIGTERM, ends as interrupted (rank
        # 0's record says so) and is waited for, instead of training on
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        for process in context.processes:
            process.join()
        raise
    return None if queue.empty() else queue.get()


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """The objective RecBole's ``HyperTuning`` calls, with the plugin's lookups."""
    config = build_config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    log_file = init_logger(config)
    logging.getLogger().setLevel(logging.ERROR)
    with recording(config, "train", "objective_function", log_file) as record:
        best_valid_score, best_valid_result, test_result = _train_and_test(
            config, record, saved, verbose=False, show=False
        )
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }


def given_settings(checkpoint):
    """The settings the user gave when training (``external_config``), without those
    that place a distributed run's processes (one process evaluates or resumes them
    where ``nproc`` is given again)."""
    return {
        k: v
        for k, v in checkpoint["external_config"].items()
        if k not in DISTRIBUTED_KEYS
    }


def checkpoint_settings(model_file):
    """``(model, dataset, settings, checkpoint)`` of a checkpoint saved by the plugin's
    trainers, the settings those of :func:`given_settings`.

    Raises:
        ConfigError: ``model_file`` is no checkpoint, or not one of the plugin's.
    """
    checkpoint = load_checkpoint(model_file, "evaluate")
    if "external_config" not in checkpoint:
        raise ConfigError(
            f"{model_file} was not saved by recbole_ssl (no 'external_config'); "
            "load RecBole checkpoints with recbole.quick_start.load_data_and_model"
        )
    saved = checkpoint["config"]
    return saved["model"], saved["dataset"], given_settings(checkpoint), checkpoint


def load_data_and_model(model_file, config_dict=None, config_file_list=None):
    """Rebuild the config, data and model of a checkpoint saved by the plugin's trainers.

    The checkpoint is read with ``weights_only=True``; the ``Config`` is rebuilt from
    the settings the user gave when training (``external_config``), updated with
    ``config_file_list``, ``config_dict`` (and, as always, the command line), e.g.
    another ``eval_args``.

    Returns:
        tuple: (config, model, dataset, train_data, valid_data, test_data)
    """
    model, dataset, settings, checkpoint = checkpoint_settings(model_file)
    config = build_config(
        model,
        dataset,
        config_file_list,
        config_dict=dict(settings, **(config_dict or {})),
    )
    init_seed(config["seed"], config["reproducibility"])
    config.log_file = init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


def evaluate_checkpoint(model_file, config_dict=None, config_file_list=None):
    """Evaluate a saved model on validation and test without training it.

    Settings come from the checkpoint, updated by ``config_file_list``,
    ``config_dict`` and the command line: e.g. ``eval_args`` with ``mode: uni100``
    scores the same weights under RecBole's sampled protocol.

    Returns:
        dict: ``valid_result`` and ``test_result``.
    """
    config, model, _, _, valid_data, test_data = load_data_and_model(
        model_file, config_dict, config_file_list
    )
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    with recording(
        config, "evaluate", "evaluate_checkpoint", config.log_file
    ) as record:
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        show = config["show_progress"]
        result = {
            "valid_result": trainer.evaluate(
                valid_data, load_best_model=False, show_progress=show
            ),
            "test_result": trainer.evaluate(
                test_data, load_best_model=False, show_progress=show
            ),
        }
        if record is not None:
            record.finish(
                result["valid_result"], result["test_result"], checkpoint=model_file
            )
    logger.info(f"evaluated {model_file} with eval_args {config['eval_args']}")
    logger.info(set_color("valid result", "yellow") + f": {result['valid_result']}")
    logger.info(set_color("test result", "yellow") + f": {result['test_result']}")
    return result
