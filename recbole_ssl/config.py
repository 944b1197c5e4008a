"""recbole_ssl.config: RecBole's ``Config`` with the plugin's defaults layered on top.

Where a value comes from, lowest priority first:

1. RecBole's internal files, in RecBole's own order: ``overall.yaml``, then
   ``model/<Name>.yaml``, then ``dataset/sample.yaml`` and ``dataset/<dataset>.yaml``,
   then the quick-start preset of the model type (``sequential.yaml`` for sequential
   models). Note that inside RecBole the dataset YAML and the quick-start preset
   override the model YAML.
2. The plugin's ``properties/overall.yaml`` (the evaluation protocol of the papers).
3. The plugin's ``properties/model/<Name>.yaml``: a plugin model's defaults win over
   everything internal, so a model's YAML is the one place that states them.
4. The external inputs, in RecBole's order: config files < ``config_dict`` < command line.
   A partial ``eval_args`` given there is merged into the default one, key by key.

When the dataset is shipped with the repository (``dataset_atomic/<dataset>/``) and the
user gives no ``data_path``, that folder is the default, resolved from the package, not
the working directory.
"""

import difflib
import warnings

import torch
from recbole.config import Config as RecBoleConfig

from recbole_ssl.errors import ConfigError, check_integer, check_number
from recbole_ssl.model.abstract_recommender import check_loss_type
from recbole_ssl.paths import PROPERTIES_DIR, SHIPPED_DATA_DIR
from recbole_ssl.utils import get_model

TRAIN_MODES = ("prefix", "sequence")
RECBOLE_LOSSES = ("CE", "BPR")  # RecBole's sequential models
# keys whose value must be an integer >= 1
POSITIVE_INTEGERS = (
    "epochs",
    "train_batch_size",
    "eval_batch_size",
    "MAX_ITEM_LIST_LENGTH",
    "eval_step",
)
NEGATIVES_FORM = "\"{'distribution': 'uniform', 'sample_num': 1}\""


def flush_denormal(on):
    """``torch.set_flush_denormal(on)``, with a warning where the CPU cannot flush
    (torch supports it on x86 with SSE3 only)."""
    if not torch.set_flush_denormal(on) and on:
        warnings.warn(
            "flush_denormal: this CPU cannot flush subnormal floats; they stay as they are",
            stacklevel=2,
        )


class Config(RecBoleConfig):
    """RecBole's ``Config`` plus the plugin's YAML files, shipped data and CPU distributed mode.

    Args are those of :class:`recbole.config.Config`; ``model`` may name a plugin model.
    """

    def _get_model_and_dataset(self, model, dataset):
        # resolve names plugin-first; RecBole's own lookup only knows core models
        if model is None:
            model = self.external_config_dict.get("model")
        if isinstance(model, str):
            model = get_model(model)
        return super()._get_model_and_dataset(model, dataset)

    def _load_config_files(self, file_list):
        self.config_files = [str(f) for f in file_list or []]  # for the run record
        return super()._load_config_files(file_list)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        for yaml_file in self.plugin_yaml_files(model, model_class):
            self._update_internal_config_dict(yaml_file)
        if (SHIPPED_DATA_DIR / dataset).is_dir():
            self.internal_config_dict["data_path"] = str(SHIPPED_DATA_DIR)

    @staticmethod
    def plugin_yaml_files(model, model_class):
        """The plugin's default files for ``model`` that exist, lowest priority first.

        A model YAML is only for the plugin's own class of that name: RecBole's
        ``SASRec`` class, passed directly, keeps RecBole's defaults.
        """
        files = [PROPERTIES_DIR / "overall.yaml"]
        if model_class.__module__.startswith("recbole_ssl."):
            files.append(PROPERTIES_DIR / "model" / f"{model}.yaml")
        return [str(f) for f in files if f.is_file()]

    def _set_default_parameters(self):
        # A partial ``eval_args`` (e.g. ``--eval_args="{'mode': 'uni100'}"``) keeps the
        # other keys of the defaults; RecBole would fill them with its own (random
        # split and order), which sequential models reject.
        default = self.internal_config_dict.get("eval_args")
        given = self.final_config_dict.get("eval_args")
        if isinstance(default, dict) and isinstance(given, dict):
            self.final_config_dict["eval_args"] = {**default, **given}
        super()._set_default_parameters()
        train_mode = self.final_config_dict.get("train_mode") or "prefix"
        if train_mode not in TRAIN_MODES:
            raise ConfigError(
                f"config key 'train_mode' must be one of {list(TRAIN_MODES)}, "
                f"got {train_mode!r}"
            )
        if train_mode == "sequence" and not getattr(
            self.model_class, "supports_sequence_mode", False
        ):
            raise ConfigError(
                f"config key 'train_mode' is 'sequence', but model {self.model} only "
                f"trains on RecBole's prefix rows; use train_mode: prefix"
            )
        self.final_config_dict["train_mode"] = train_mode
        self._check_value_types()
        self._check_values()
        check_config = getattr(self.model_class, "check_config", None)
        if check_config is not None:  # a model's own checks, before data is loaded
            check_config(self.final_config_dict)

    def _check_value_types(self):
        """A key whose default is a number or a bool must be given one.

        RecBole keeps an unparsable command-line value as a string (``--epochs=ten``),
        which fails much later, deep inside training.
        """
        for key, default in self.internal_config_dict.items():
            value = self.final_config_dict.get(key)
            if key not in self.external_config_dict or value is None:
                continue
            if isinstance(default, bool):
                ok = isinstance(value, bool) or value in (0, 1)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                continue
            if not ok:
                raise ConfigError(
                    f"config key {key!r} expects a {type(default).__name__} "
                    f"(default {default!r}), got {value!r}"
                )

    def _check_values(self):
        """Values every run needs in range, and a loss the model can train with."""
        cfg = self.final_config_dict
        for key in POSITIVE_INTEGERS:
            if cfg.get(key) is not None:
                check_integer(key, cfg[key], 1)
        check_number("learning_rate", cfg.get("learning_rate"), 0, low_open=True)
        nproc = cfg.get("nproc") or 1
        gpus = str(cfg.get("gpu_id") or "").split(",")
        if nproc > 1 and cfg.get("use_gpu") and torch.cuda.is_available():
            if len(gpus) < nproc:
                raise ConfigError(
                    f"nproc {nproc} on CUDA needs one GPU per process: gpu_id is "
                    f"{cfg.get('gpu_id')!r}; set e.g. --gpu_id={','.join(map(str, range(nproc)))}"
                    " (or --use_gpu=False for gloo on the CPU)"
                )
        if cfg.get("eval_groups") is not None:
            check_integer("eval_groups", cfg["eval_groups"], 0)
        for key, value in cfg.items():
            if key.endswith("dropout_prob") and value is not None:
                check_number(key, value, 0, 1, high_open=True)
        loss_type = cfg.get("loss_type")
        if loss_type is None:
            return
        if getattr(self.model_class, "supports_sequence_mode", False):
            check_loss_type(self.model, loss_type, self.model_class.loss_types)
            return
        if loss_type == "BCE":
            raise ConfigError(
                f"loss_type 'BCE' is the plugin's; RecBole's {self.model} trains with "
                f"{' or '.join(RECBOLE_LOSSES)}"
            )
        negatives = cfg.get("train_neg_sample_args") or {}
        if loss_type == "BPR" and negatives.get("distribution") in (None, "none"):
            raise ConfigError(
                f"loss_type 'BPR' for RecBole's {self.model} needs a sampled negative: "
                f"set train_neg_sample_args, e.g. --train_neg_sample_args={NEGATIVES_FORM}"
            )

    def unknown_command_line_keys(self, reserved=()):
        """``[(key, closest known key or None)]`` of the ``--key=value`` settings of the
        command line that no configuration of this run knows: not in any default YAML
        (RecBole's, the plugin's, the model's), not in the config files or
        ``config_dict``, and not in ``reserved`` (the command line's own options)."""
        known = (
            set(self.internal_config_dict)
            | set(self.file_config_dict)
            | set(self.variable_config_dict)
            | set(reserved)
        )
        unknown = []
        for key in sorted(set(self.cmd_config_dict) - known):
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            unknown.append((key, close[0] if close else None))
        return unknown

    def _init_device(self):
        """``use_gpu: False`` trains on the CPU, and distributed runs use gloo on the
        CPU when CUDA is not available or not to be used.

        RecBole 1.2.1 picks the device from ``gpu_id`` and CUDA alone (``use_gpu`` only
        labels its logs) and hard-codes nccl and ``cuda:<rank>`` for distributed runs;
        on a CUDA machine with ``use_gpu`` its code runs unchanged. ``flush_denormal``
        sets how this process's CPU computes subnormal floats.
        """
        cfg = self.final_config_dict
        flush_denormal(bool(cfg.get("flush_denormal")))
        if "local_rank" not in cfg:
            super()._init_device()
            if not cfg["use_gpu"]:
                cfg["device"] = torch.device("cpu")
            return
        if torch.cuda.is_available() and cfg["use_gpu"]:
            return super()._init_device()
        cfg["gpu_id"] = str(cfg["gpu_id"])
        torch.distributed.init_process_group(
            backend="gloo",
            rank=cfg["local_rank"] + cfg["offset"],
            world_size=cfg["world_size"],
            init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
        )
        cfg["device"] = torch.device("cpu")
        cfg["single_spec"] = False
        if cfg["local_rank"] != 0:
            cfg["state"] = "error"
            cfg["show_progress"] = False
            cfg["verbose"] = False
