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
5. Tensorboard events go to ``tensorboard_dir`` (default ``log_tensorboard``, RecBole's
   folder). RecBole's ``Trainer.__init__`` creates its writer with ``get_tensorboard``,
   which hard-codes that folder; short of copying ``__init__``, the only hook is the
   name ``get_tensorboard`` in ``recbole.trainer.trainer``, rebound to a writer in the
   chosen folder while ``super().__init__`` runs, and only when the folder differs.
6. Each epoch's training seconds and loss parts, and each validation's seconds and
   metrics, go to ``run_record`` (a :class:`recbole_ssl.record.RunRecord`, set by the
   quick start; None leaves training as it was). RecBole's ``fit`` hands every epoch's
   own timing to ``_generate_train_loss_output``, which is where it is taken, so it
   includes what a subclass does in ``_train_epoch`` before ``super()`` (ICLRec's
   E-step, CoSeRec's correlation refresh). ``stage`` names the stage in the record
   (S3-Rec's ``pretrain`` and ``finetune``).
"""

import contextlib
import functools
import os
import time

import recbole.trainer.trainer as recbole_trainer_module
import torch
from recbole.trainer import Trainer as RecBoleTrainer
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from recbole_ssl.distributed import broadcast_object
from recbole_ssl.record import to_plain

RECBOLE_TENSORBOARD_DIR = "log_tensorboard"


@contextlib.contextmanager
def tensorboard_in(folder):
    """RecBole's trainers, created inside, write tensorboard events under ``folder``
    (in a subfolder named after the run's log file, or the time)."""
    if not folder or os.path.normpath(folder) == RECBOLE_TENSORBOARD_DIR:
        yield  # RecBole's own folder: its code runs unchanged
        return
    recbole_get_tensorboard = recbole_trainer_module.get_tensorboard

    def get_tensorboard(logger):
        names = [
            os.path.basename(h.baseFilename).split(".")[0]
            for h in logger.handlers
            if hasattr(h, "baseFilename")
        ]
        # the newest file handler: the run's own log (RecBole takes the first one,
        # which under pytest is its /dev/null handler)
        name = names[-1] if names else f"model-{time.strftime('%b-%d-%Y_%H-%M-%S')}"
        return SummaryWriter(os.path.join(folder, name))

    recbole_trainer_module.get_tensorboard = get_tensorboard
    try:
        yield
    finally:
        recbole_trainer_module.get_tensorboard = recbole_get_tensorboard


class PluginTrainerMixin:
    """The plugin's fixes, for any RecBole trainer class (see the module docstring)."""

    run_record = None  # a recbole_ssl.record.RunRecord, or None
    stage = "train"  # the stage the record files epochs under

    def __init__(self, config, model):
        # RecBole's ensure_dir checks, then creates: two ranks racing there make the
        # loser fail with FileExistsError, so the folder exists before they get there
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        distributed = not config["single_spec"]
        if distributed and config["device"].type == "cpu":
            config["single_spec"] = True  # skip RecBole's CUDA-only DDP wrapping ...
            try:
                with tensorboard_in(config["tensorboard_dir"]):
                    super().__init__(config, model)
            finally:
                config["single_spec"] = False
            self.distributed_model = DistributedDataParallel(self.model)  # ... CPU's
        else:
            with tensorboard_in(config["tensorboard_dir"]):
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
        if self.run_record is not None:
            self.run_record.epoch(
                epoch_idx, e_time - s_time, self.named_losses(losses), self.stage
            )
        return output

    def checkpoint_files(self):
        """``{"checkpoint": path}`` of what this trainer saved, for the run record."""
        return {"checkpoint": self.saved_model_file}

    def named_losses(self, losses):
        """``{name: value}`` of an epoch's loss: the model's ``loss_parts`` names,
        RecBole's ``train_loss1, ...`` for an unnamed tuple, or ``loss``."""
        if not isinstance(losses, tuple):
            return {"loss": float(losses)}
        names = getattr(getattr(self.model, "loss_parts", None), "_fields", ())
        if len(names) != len(losses):
            names = [f"train_loss{idx + 1}" for idx in range(len(losses))]
        return {name: float(value) for name, value in zip(names, losses, strict=True)}

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.time()
        valid_score, valid_result = super()._valid_epoch(
            valid_data, show_progress=show_progress
        )
        if self.run_record is not None:
            self.run_record.validation(
                time.time() - start, valid_score, valid_result, self.stage
            )
        return valid_score, valid_result

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
