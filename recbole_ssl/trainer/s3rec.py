"""recbole_ssl.trainer.s3rec: S3-Rec's two stages in one trainer.

``train_stage`` (in ``S3Rec.yaml``):

* ``pretrain_finetune`` (default): pretrain for ``pretrain_epochs``, saving the
  weights after every epoch to ``<checkpoint_dir>/S3Rec-<dataset>-pretrain-<time>.pth``
  (the path is logged), then finetune from them with early stopping on validation.
* ``pretrain``: only the first stage; nothing is evaluated.
* ``finetune``: load ``pre_model_path`` (a checkpoint of the first stage), then
  finetune.

Each stage is one call of RecBole's ``Trainer.fit``: pretraining runs it without
validation data (RecBole then saves a checkpoint every epoch), finetuning runs it as
usual, with a fresh optimizer and early-stopping state. A run resumes (``resume``, the
run's ``-last.pth`` checkpoint) in the stage it was saved in: in pretraining, it
pretrains on and then finetunes; in finetuning, it skips pretraining.
"""

import collections
import os

import numpy as np
import torch
from recbole.utils.utils import get_local_time

from recbole_ssl.checkpoint import LAST, load_checkpoint
from recbole_ssl.distributed import broadcast_object
from recbole_ssl.errors import ConfigError
from recbole_ssl.trainer.trainer import Trainer


class S3RecTrainer(Trainer):
    """Pretrain (bidirectional, four objectives), then finetune (causal, next item)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_stage = config["train_stage"]
        self.pretrain_epochs = config["pretrain_epochs"]
        self.pre_model_path = config["pre_model_path"] or None
        self._initial_weights = None  # pre_model_path is the finetune stage's start
        if self.train_stage == "finetune" and self.pre_model_path is None:
            raise ConfigError(
                "train_stage 'finetune' needs pre_model_path, a checkpoint of "
                "train_stage 'pretrain' (or use train_stage 'pretrain_finetune')"
            )
        name = f"{config['model']}-{config['dataset']}-pretrain-{get_local_time()}.pth"
        self.pretrain_model_file = broadcast_object(
            os.path.join(self.checkpoint_dir, name)
        )
        self.finetune_model_file = self.saved_model_file
        self._resume_file = self._resume_stage = None

    def resume(self, resume_file):
        """Resume the run of ``resume_file`` (a ``-last.pth`` checkpoint) in its stage,
        once :meth:`fit` reaches it."""
        checkpoint = load_checkpoint(resume_file, "resume")
        stage = checkpoint.get("stage")
        if checkpoint.get("kind") != LAST or stage not in ("pretrain", "finetune"):
            raise ConfigError(
                f"resume: {resume_file} is not the last checkpoint of an S3Rec run "
                "(resume from the run's '-last.pth' file)"
            )
        if self.train_stage not in (stage, "pretrain_finetune"):
            raise ConfigError(
                f"resume: {resume_file} was saved in the {stage} stage, which "
                f"train_stage {self.train_stage!r} does not run"
            )
        self._resume_file, self._resume_stage = resume_file, stage
        self.last_model_file = str(resume_file)  # the run goes on writing it

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, **kwargs):
        resume_file, resume_stage = self._resume_file, self._resume_stage
        self._resume_file = self._resume_stage = None
        if self.train_stage == "finetune" or resume_stage == "finetune":
            if resume_stage is None:
                self.load_pretrained(self.pre_model_path)
        else:
            resume_pretraining = resume_file if resume_stage == "pretrain" else None
            self.pretrain(train_data, verbose, resume=resume_pretraining, **kwargs)
            if self.train_stage == "pretrain":
                return -1, None
        self.start_finetuning()
        if resume_stage == "finetune":
            self.resume_checkpoint(resume_file)
        return super().fit(train_data, valid_data, verbose, saved, **kwargs)

    def pretrain(self, train_data, verbose=True, resume=None, **kwargs):
        """Stage 1: ``pretrain_epochs`` epochs of the four objectives, saved per epoch
        (from the last checkpoint ``resume`` of a pretraining, if given)."""
        finetune_epochs = self.epochs
        self.model.set_stage("pretrain")
        self.stage = "pretrain"
        self.saved_model_file = self.pretrain_model_file
        self.epochs = self.pretrain_epochs
        if resume is not None:
            self.resume_checkpoint(resume)  # the pretraining and finetuning files too
        self.logger.info(
            f"pretraining for epochs {self.start_epoch}..{self.epochs - 1}, "
            f"saving to {self.saved_model_file}"
        )
        try:
            super().fit(train_data, None, verbose, saved=True, **kwargs)
        finally:
            self.saved_model_file, self.epochs = (
                self.finetune_model_file,
                finetune_epochs,
            )
        self.logger.info(f"pretrained weights saved to {self.pretrain_model_file}")

    def trainer_state(self):
        """Where the two stages' checkpoints go (the run's files, kept on resume)."""
        return dict(
            super().trainer_state(),
            pretrain_model_file=self.pretrain_model_file,
            finetune_model_file=self.finetune_model_file,
        )

    def load_trainer_state(self, state):
        super().load_trainer_state(state)
        self.pretrain_model_file = state["pretrain_model_file"]
        self.finetune_model_file = state["finetune_model_file"]

    def checkpoint_files(self):
        """The finetuned checkpoint and the pretrained weights it started from (the
        pretraining checkpoint alone for ``train_stage: pretrain``)."""
        if self.train_stage == "pretrain":
            return {"checkpoint": self.pretrain_model_file}
        pretrained = self.pre_model_path
        if self.train_stage == "pretrain_finetune":
            pretrained = self.pretrain_model_file
        return {"checkpoint": self.saved_model_file, "pretrain_checkpoint": pretrained}

    def start_finetuning(self):
        """Causal encoder, a new optimizer and a fresh early-stopping state."""
        self.model.set_stage("finetune")
        self.stage = "finetune"
        self.optimizer = self._build_optimizer()
        self.start_epoch = 0
        self.cur_step = 0
        self.best_valid_score = -np.inf if self.valid_metric_bigger else np.inf
        self.best_valid_result = None

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, **kwargs):
        if self.train_stage == "pretrain":
            self.logger.info("train_stage 'pretrain': nothing to evaluate")
            return collections.OrderedDict()
        return super().evaluate(eval_data, load_best_model, model_file, **kwargs)
