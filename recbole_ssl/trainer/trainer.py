"""recbole_ssl.trainer.trainer: RecBole's trainers with the fixes every plugin run needs.

1. Checkpoints hold plain types only (the config as a dict), so they load with
   ``torch.load(weights_only=True)``, the default since torch 2.6; RecBole pickles its
   ``Config`` object into them and cannot reload its own checkpoints there.
2. Distributed runs work on the CPU (gloo): RecBole wraps the model in
   ``DistributedDataParallel(device_ids=[rank])``, which only a CUDA module accepts;
   every rank loads the best checkpoint only once rank 0 has written it.
3. Training runs with autograd's anomaly detection as ``detect_anomaly`` says (off by
   default). RecBole's ``sine.py`` switches it on for the whole process when imported,
   and any import of ``recbole.model.sequential_recommender`` imports it: every backward
   pass then checks every gradient for NaN (measured on Beauty: RecBole's SASRec epoch
   172 s, the same rows with it off 116 s; results/amazon-beauty.md).
4. The checkpoint folder is made before RecBole's ``ensure_dir``, whose check-then-create
   fails one of two distributed ranks that reach it together (seen once in CI).
"""

import enum
import functools
import os

import torch
from recbole.trainer import Trainer as RecBoleTrainer
from torch.nn.parallel import DistributedDataParallel

from recbole_ssl.utils import broadcast_object


def to_plain(value):
    """``value`` with only types ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()  # numpy / torch scalars
    return str(value)


class PluginTrainerMixin:
    """The plugin's fixes, for any RecBole trainer class (see the module docstring)."""

    def __init__(self, config, model):
        # RecBole's ensure_dir checks, then creates: two ranks racing there make the
        # loser fail with FileExistsError, so the folder exists before they get there
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        distributed = not config["single_spec"]
        if distributed and config["device"].type == "cpu":
            config["single_spec"] = True  # skip RecBole's CUDA-only DDP wrapping ...
            try:
                super().__init__(config, model)
            finally:
                config["single_spec"] = False
            self.distributed_model = DistributedDataParallel(self.model)  # ... CPU's
        else:
            super().__init__(config, model)
        # the file name holds the local time: every rank loads the file rank 0 writes
        self.saved_model_file = broadcast_object(self.saved_model_file)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        with torch.autograd.set_detect_anomaly(bool(self.config["detect_anomaly"])):
            return super()._train_epoch(
                train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress
            )

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        output = super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        # a model whose loss is a NamedTuple (``loss_parts``) gets its parts' names
        # logged instead of RecBole's train_loss1, train_loss2, ...
        names = getattr(getattr(self.model, "loss_parts", None), "_fields", ())
        if isinstance(losses, tuple) and len(names) == len(losses):
            for idx in reversed(range(len(names))):
                output = output.replace(f"train_loss{idx + 1}", names[idx])
        return output

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            # every final value, for reading; what the user set, to rebuild the Config
            "config": to_plain(self.config.final_config_dict),
            "external_config": to_plain(self.config.external_config_dict),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        torch.save(state, saved_model_file)
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, **kwargs):
        if load_best_model and not self.config["single_spec"]:
            torch.distributed.barrier()  # rank 0 has finished writing the checkpoint
        return super().evaluate(
            eval_data, load_best_model=load_best_model, model_file=model_file, **kwargs
        )


class Trainer(PluginTrainerMixin, RecBoleTrainer):
    """RecBole's ``Trainer`` with the plugin's fixes: the base of the plugin's trainers."""


@functools.lru_cache(maxsize=None)
def with_plugin_fixes(trainer_class):
    """``trainer_class`` (a RecBole trainer) with :class:`PluginTrainerMixin` applied."""
    if issubclass(trainer_class, PluginTrainerMixin):
        return trainer_class
    if trainer_class is RecBoleTrainer:
        return Trainer
    return type(trainer_class.__name__, (PluginTrainerMixin, trainer_class), {})
