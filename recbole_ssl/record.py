"""recbole_ssl.record: one JSON record per run, written atomically.

Every run of :func:`recbole_ssl.quick_start.run_recbole_ssl` (the command line, Python,
``run_hyper.py`` trials) and of ``--evaluate`` writes, on rank 0 only, one file

    <record_dir>/<dataset>/<model>-seed<seed>-<start time>-<pid>.json

(``record_dir`` defaults to ``results/runs`` under the working folder, like ``saved/``;
``record: False`` switches it off). The file is rewritten after every epoch, each time
to a temporary file that then replaces it, so a reader never sees half a record. Its
``status`` is ``running`` while the run goes on, then ``finished``, ``failed`` (an
exception, named in ``error``) or ``interrupted`` (Ctrl-C or SIGTERM); a run killed
outright (SIGKILL) leaves its last ``running`` record with the epochs it completed.

What a record holds: model, dataset, seed, the resolved config as plain types and the
keys that differ from the defaults (``config_diff``; ``setting`` is the same without
the seed and the keys that only say where outputs go), the command line, git commit and
whether tracked files were modified, versions, machine, start and end time, wall
seconds, per epoch (training seconds, each named loss part, validation seconds and
metrics), the best epoch, best validation and test metrics, the checkpoint path; a
run that starts from ``pre_model_path`` names, under ``pretraining``, the record of the
run that saved that checkpoint, its seed and epoch.
A run resumed from its last checkpoint (``resume``) goes on in the record of the run it
resumes, cut back to the epochs that checkpoint holds, and lists the resume under
``resumes`` (time, checkpoint, the status it found, its own command and machine).
:mod:`recbole_ssl.report` renders the results pages from these files.
"""

import datetime
import enum
import json
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager

from recbole_ssl import paths
from recbole_ssl.errors import ConfigError

FORMAT = "recbole-ssl run record"
VERSION = 1
STATUSES = ("running", "finished", "failed", "interrupted")

# keys that say where outputs go, how a run is displayed, or how its CPU computes
# (flush_denormal: only values below 1.2e-38 change): not part of a setting
NON_SETTING_KEYS = frozenset(
    {
        "seed",
        "model",
        "dataset",
        "record",
        "record_dir",
        "checkpoint_dir",
        "log_dir",
        "tensorboard_dir",
        "data_path",
        "show_progress",
        "flush_denormal",
        "state",
        "local_rank",
        "ip",
        "port",
        "offset",
        "gpu_id",
        "log_wandb",
        "wandb_project",
        "save_dataset",
        "save_dataloaders",
        "dataset_save_path",
        "dataloaders_save_path",
        "verbose",
        "config_files",  # their keys are in the difference themselves
        "evaluate",
        "resume",  # a resumed run is the run it resumes
        "group_offset",
        "eval_batch_size",  # full-sort metrics do not depend on it
        "detect_anomaly",  # checks gradients, changes no value
        "worker",
        "use_gpu",
    }
)

_MISSING = object()
PACKAGE_DIR = str(paths.PACKAGE_DIR)
# the papers' settings, as config files (see the README's "Reproduce a paper")
PRESETS_DIR = str(paths.PRESETS_DIR)


def presets_of(config_files):
    """The names of the shipped presets among ``config_files`` (in their order)."""
    return [
        os.path.splitext(os.path.basename(path))[0]
        for path in config_files
        if os.path.dirname(os.path.realpath(path)) == os.path.realpath(PRESETS_DIR)
    ]


def to_plain(value):
    """``value`` with only JSON types (dicts with string keys, lists, numbers, strings;
    a NaN or infinite number becomes None)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    if isinstance(value, float):  # numpy.float64 too: a float it becomes
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return to_plain(value.item())  # numpy / torch scalars
    return str(value)


def write_atomic(path, content, mode="w"):
    """Write ``content`` (text, or bytes with ``mode="wb"``) to ``path`` through a
    hidden temporary file in the same folder and a rename: a reader sees the old file
    or the new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path, data):
    """Write ``data`` as JSON (no NaN: :func:`to_plain` makes it None) atomically."""
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    write_atomic(path, text)


def config_diff(config):
    """The keys the user set whose final value differs from the defaults."""
    internal = config.internal_config_dict
    final = config.final_config_dict
    diff = {}
    for key in sorted(config.external_config_dict):
        if key in ("model", "dataset"):
            continue
        value = to_plain(final.get(key))
        if value != to_plain(internal.get(key, _MISSING)):
            diff[key] = value
    return diff


def setting_of(diff):
    """What makes a run's setting: its config difference without seed and output keys
    (and without ``nproc: 1``, the single process every run is by default)."""
    return {
        k: v
        for k, v in diff.items()
        if k not in NON_SETTING_KEYS and not (k == "nproc" and v == 1)
    }


def git_state(folder=None):
    """``{"commit": sha, "dirty": bool}`` of the checkout holding the package, or Nones.

    Dirty means a tracked file differs from the commit (untracked files, such as new
    records, do not count)."""
    folder = folder or os.path.dirname(PACKAGE_DIR)

    def git(*args):
        out = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def versions():
    import numpy
    import recbole
    import torch

    import recbole_ssl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recbole": recbole.__version__,
        "recbole_ssl": recbole_ssl.__version__,
        "numpy": numpy.__version__,
    }


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine(device=None):
    """The machine a run uses: CPU, cores, threads, memory, GPU (if it runs on one)."""
    import torch

    gpu = None
    if device is not None and torch.device(device).type == "cuda":
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "memory_gib": _memory_gib(),
        "gpu": gpu,
        "platform": platform.platform(),
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).astimezone()


def is_record_rank(config):
    """Rank 0 of a distributed run (or the only process) writes the record."""
    rank = (config["local_rank"] or 0) + (config["offset"] or 0)
    return config["single_spec"] or rank == 0


class RunRecord:
    """The record of one run; every change is written to disk at once.

    Args:
        config: the run's :class:`recbole_ssl.config.Config`.
        kind (str): ``train`` or ``evaluate``.
        entry (str): the function the run came through.
        log_file (str): the run's text log.
    """

    def __init__(self, config, kind="train", entry=None, log_file=None, resumes=None):
        self.started = _now()
        self._clock = time.perf_counter()
        diff = config_diff(config)
        name = (
            f"{config['model']}-seed{config['seed']}-"
            f"{self.started.strftime('%Y%m%dT%H%M%S.%f')}-{os.getpid()}.json"
        )
        self.path = os.path.join(
            config["record_dir"] or os.path.join("results", "runs"),
            config["dataset"],
            name,
        )
        self.valid_metric = str(config["valid_metric"]).lower()
        self.bigger = bool(config["valid_metric_bigger"])
        self.data = {
            "format": FORMAT,
            "version": VERSION,
            "status": "running",
            "kind": kind,
            "transcribed": False,
            "model": config["model"],
            "dataset": config["dataset"],
            "seed": config["seed"],
            "setting": setting_of(diff),
            "config_diff": diff,
            "config_files": list(getattr(config, "config_files", [])),
            "presets": presets_of(getattr(config, "config_files", [])),
            "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
            "cwd": os.getcwd(),
            "entry": entry,
            "git": git_state(),
            "versions": versions(),
            "machine": machine(config["device"]),
            "start_time": self.started.isoformat(timespec="seconds"),
            "end_time": None,
            "wall_seconds": None,
            "valid_metric": self.valid_metric,
            "epochs": [],
            "epochs_run": 0,
            "best_epoch": None,
            "best_valid": None,
            "test": None,
            "checkpoint": None,
            "log_file": log_file,
            "error": None,
            "config": to_plain(config.final_config_dict),
        }
        if resumes is not None:
            self._continue(**resumes)
        try:
            self.save(strict=True)
        except OSError as e:
            raise ConfigError(
                f"record_dir: cannot write the run record {self.path} ({e})"
            ) from None

    def _continue(self, checkpoint, record):
        """Go on in the record of the run that ``checkpoint`` (its last checkpoint)
        resumes, cut back to the epochs the checkpoint holds; each resume is listed
        under ``resumes``. Without that record (``record``: ``{path, entries}`` or
        None; moved, deleted, another run's), a new one says ``resumed_from``."""
        previous = None
        if record is not None:
            try:
                previous = load(record["path"])
            except ValueError as e:
                logging.getLogger().warning(f"resume: a new run record, as {e}")
        same_run = previous is not None and all(
            previous[key] == self.data[key] for key in ("model", "dataset", "seed")
        )
        if not same_run:
            self.data["resumed_from"] = str(checkpoint)
            return
        resume = {
            "time": self.data["start_time"],
            "checkpoint": str(checkpoint),
            "previous_status": previous["status"],
            "epochs_kept": record["entries"],
            "epochs_dropped": len(previous["epochs"]) - record["entries"],
        }
        for key in ("command", "cwd", "git", "versions", "machine", "log_file"):
            resume[key] = self.data[key]
        # the run's own: a resume takes its settings from the checkpoint, files' too
        kept = ("command", "cwd", "start_time", "git", "versions", "machine")
        for key in (*kept, "config_files", "presets"):
            self.data[key] = previous.get(key, self.data[key])
        self.data["log_file"] = previous.get("log_file")
        if "pretraining" in previous:  # it loaded pre_model_path before the cut
            self.data["pretraining"] = previous["pretraining"]
        self.data["epochs"] = previous["epochs"][: record["entries"]]
        self.data["resumes"] = [*previous.get("resumes", []), resume]
        self.path = record["path"]

    def save(self, strict=False):
        """Write the record; after the first write, a failure (disk full) is logged
        and training goes on (the next epoch tries again)."""
        self.count_epochs()
        self.data["best_epoch"] = self.best_epoch()
        try:
            write_json_atomic(self.path, self.data)
        except OSError as e:
            if strict:
                raise
            logging.getLogger().warning(f"run record not written: {self.path} ({e})")

    def epoch(self, epoch_idx, seconds, losses, stage="train"):
        """A training epoch ended: its seconds (as RecBole times it) and loss parts."""
        self.data["epochs"].append(
            {
                "stage": stage,
                "epoch": int(epoch_idx),
                "train_seconds": round(float(seconds), 3),
                "losses": {k: to_plain(float(v)) for k, v in losses.items()},
            }
        )
        self.save()

    def validation(self, seconds, score, result, stage="train"):
        """The validation after the stage's last epoch: its seconds, score, metrics."""
        entries = [e for e in self.data["epochs"] if e["stage"] == stage]
        if not entries:
            raise ValueError(f"a validation before any epoch of stage {stage!r}")
        entry = entries[-1]
        entry["valid_seconds"] = round(float(seconds), 3)
        entry["valid_score"] = to_plain(float(score))
        entry["valid"] = to_plain(dict(result))
        self.save()

    def best_epoch(self):
        """The epoch RecBole keeps: the last one with the best score of the last
        validated stage (its early stopping takes a tie as a new best)."""
        validated = [e for e in self.data["epochs"] if "valid_score" in e]
        if not validated:
            return None
        stage = validated[-1]["stage"]
        validated = [  # RecBole never keeps a NaN score (stored as None)
            e for e in validated if e["stage"] == stage and e["valid_score"] is not None
        ]
        if not validated:
            return None
        scores = [e["valid_score"] for e in validated]
        best = max(scores) if self.bigger else min(scores)
        return [e["epoch"] for e in validated if e["valid_score"] == best][-1]

    def count_epochs(self):
        """``epochs_run``: epochs of the last stage; ``<stage>_epochs_run`` for the
        stages before it (S3-Rec's ``pretrain_epochs_run``)."""
        stages = [e["stage"] for e in self.data["epochs"]]
        last = stages[-1] if stages else None
        for stage in dict.fromkeys(stages):
            if stage != last:
                self.data[f"{stage}_epochs_run"] = stages.count(stage)
        self.data["epochs_run"] = stages.count(last) if last else 0

    def finish(
        self,
        best_valid=None,
        test=None,
        tested=None,
        checkpoint=None,
        pretrain_checkpoint=None,
    ):
        """The run ended well. ``tested``: which model the test figures are of,
        ``best`` (the best validation epoch's checkpoint) or ``last`` (the last
        epoch's weights, when nothing was saved)."""
        self.data["best_valid"] = to_plain(dict(best_valid)) if best_valid else None
        self.data["test"] = to_plain(dict(test)) if test else None
        if tested is not None:
            self.data["tested"] = tested
        if checkpoint is not None:
            self.data["checkpoint"] = str(checkpoint)
        if pretrain_checkpoint is not None:
            self.data["pretrain_checkpoint"] = str(pretrain_checkpoint)
        self._end("finished")

    def pretrained_from(self, path, checkpoint):
        """The run starts from the checkpoint at ``path`` (``pre_model_path``):
        ``pretraining`` says which run saved it (the file name of that run's record;
        None for a checkpoint saved without one, e.g. converted from another code),
        with which model and seed, after which epoch (counted from 0). The report
        groups fine-tunings of pretrainings of one setting, one per seed, by it."""
        config = checkpoint.get("config") or {}
        self.data["pretraining"] = to_plain(
            {
                "path": str(path),
                "record": checkpoint.get("run_record"),
                "model": config.get("model"),
                "seed": config.get("seed"),
                "epoch": checkpoint.get("epoch"),
            }
        )
        self.save()

    def fail(self, error):
        interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
        message = f"{type(error).__name__}: {error}".strip().rstrip(":")
        self.data["error"] = (
            message.splitlines()[0] if message else type(error).__name__
        )
        self._end("interrupted" if interrupted else "failed")

    def _end(self, status):
        ended = _now()
        self.data["status"] = status
        self.data["end_time"] = ended.isoformat(timespec="seconds")
        self.data["wall_seconds"] = round(time.perf_counter() - self._clock, 1)
        self.save()


@contextmanager
def recording(config, kind="train", entry=None, log_file=None, resumes=None):
    """Yield the run's :class:`RunRecord` (None when ``record`` is off or on ranks
    other than 0); an exception leaving the block marks it failed or interrupted.
    ``resumes``: ``{"checkpoint", "record"}`` of a resumed run (see ``_continue``)."""
    if not config["record"] or not is_record_rank(config):
        yield None
        return
    record = RunRecord(config, kind, entry, log_file, resumes=resumes)
    try:
        yield record
    except BaseException as e:
        record.fail(e)
        raise
    if record.data["status"] == "running":
        record.finish()


def load(path):
    """A record from ``path``; a file that is not one raises ``ValueError`` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable run record ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a run record (no 'format': {FORMAT!r})")
    if data.get("status") not in STATUSES:
        raise ValueError(
            f"{path}: 'status' must be one of {list(STATUSES)}, "
            f"got {data.get('status')!r}"
        )
    _check_fields(path, data)
    return data


def _check_fields(path, data):
    """The fields the report reads, with their types; a record by hand may lack the
    others (command, machine, ...)."""

    def fail(what):
        raise ValueError(f"{path}: {what}")

    for key, types in (("model", str), ("dataset", str), ("kind", str)):
        if not isinstance(data.get(key), types):
            fail(f"{key!r} must be a string, got {data.get(key)!r}")
    if not isinstance(data.get("seed"), int) or isinstance(data.get("seed"), bool):
        fail(f"'seed' must be an integer, got {data.get('seed')!r}")
    for key in ("setting", "test", "best_valid"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            fail(f"{key!r} must be an object or null, got {data[key]!r}")
    for key in ("test", "best_valid"):
        for metric, value in (data.get(key) or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                fail(f"{key}.{metric} must be a number, got {value!r}")
    pretraining = data.get("pretraining")
    if pretraining is not None:
        if not isinstance(pretraining, dict):
            fail(f"'pretraining' must be an object or null, got {pretraining!r}")
        for key, kind, what in (
            ("record", str, "a string"),
            ("seed", int, "an integer"),
            ("epoch", int, "an integer"),
        ):
            value = pretraining.get(key)
            if value is not None and (
                not isinstance(value, kind) or isinstance(value, bool)
            ):
                fail(f"pretraining.{key} must be {what} or null, got {value!r}")
    epochs = data.get("epochs", [])
    if not isinstance(epochs, list):
        fail(f"'epochs' must be a list, got {epochs!r}")
    for i, entry in enumerate(epochs):
        if not isinstance(entry, dict) or not isinstance(entry.get("stage"), str):
            fail(f"epochs[{i}] needs a 'stage' string")
        if not isinstance(entry.get("epoch"), int):
            fail(f"epochs[{i}] needs an integer 'epoch'")
        for metric, value in (entry.get("valid") or {}).items():
            if value is not None and not isinstance(value, (int, float)):
                fail(f"epochs[{i}].valid.{metric} must be a number, got {value!r}")
