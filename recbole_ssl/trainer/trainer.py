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
   includes what a subclass does at the epoch's start in :meth:`before_epoch` (ICLRec's
   E-step, CoSeRec's correlation refresh). ``stage`` names the stage in the record
   (S3-Rec's ``pretrain`` and ``finetune``).
7. Any run resumes exactly (``resume``, :meth:`PluginTrainerMixin.resume`). At the
   start of every epoch, before the trainer's own work there (:meth:`before_epoch`:
   E-steps, correlation refreshes), the run's state goes to ``<checkpoint>-last.pth``
   beside the best checkpoint: weights, optimizer, the epoch, early stopping's step,
   best score and result, where the best checkpoint is, the stage, what the trainer
   keeps between epochs (:meth:`trainer_state`) and every random state (Python,
   NumPy, torch, the training loader's shuffle generator, the model's own generators;
   each rank's). A resumed run restores them at the start of its first epoch, so it
   draws and computes what the uninterrupted run would have: the same weights, losses
   and metrics, bit for bit. What a trainer recomputes at the start of an epoch from
   the weights (ICLRec's E-step, CoSeRec's hybrid correlation) is recomputed then,
   from the same weights. After the last epoch the state is saved once more, marked
   ``finished``: resuming it only tests. Both checkpoints are written atomically.
   The epoch's seconds include this save (milliseconds on the benchmarks' models).
8. Distributed evaluation computes every metric once over all users, as one process
   does: each rank ranks its stride of the users, and :class:`GlobalCollector` hands
   the evaluator every rank's rows. RecBole instead averages the ranks' metrics, each
   already rounded to ``metric_decimal_place`` and weighted by what its ``evaluate``
   counts as samples: 4 per full-sort batch (the length of the batch's tuple), not
   the users in it.
9. The full-sort evaluation holds at most ``eval_max_scores`` scores at once when the
   metrics need only the top ``k`` (:mod:`recbole_ssl.trainer.full_sort`): a catalogue
   of a million items evaluates in bounded memory, with the same metrics.
"""

import collections
import contextlib
import functools
import os
import time

import recbole.trainer.trainer as recbole_trainer_module
import torch
from recbole.evaluator import Collector
from recbole.trainer import Trainer as RecBoleTrainer
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from recbole_ssl.checkpoint import (
    LAST,
    last_checkpoint_file,
    load_checkpoint,
    load_from_rank0,
    save_checkpoint,
)
from recbole_ssl.distributed import (
    broadcast_object,
    gather_from_all_ranks,
    gather_objects,
    process_group,
)
from recbole_ssl.errors import ConfigError
from recbole_ssl.randomness import (
    generator_state,
    global_states,
    set_global_states,
)
from recbole_ssl.record import to_plain
from recbole_ssl.trainer.full_sort import needs_whole_table, top_k_scores

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


class GlobalCollector(Collector):
    """RecBole's ``Collector`` whose data for the evaluator hold every rank's rows (in
    rank order) in a distributed run, so every rank computes the metrics of all users
    at once, as one process does."""

    # what RecBole's collector gathers per evaluated row (it resets them after each
    # evaluation); the rest (item counts, the model's tensors) is the same on every rank
    ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")

    def get_data_struct(self):
        struct = super().get_data_struct()
        for key in self.ROW_KEYS:
            if key in struct:
                struct[key] = gather_from_all_ranks(struct[key])
        return struct


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
        if distributed:
            self.eval_collector = GlobalCollector(config)
        # the file name holds the local time: every rank loads the file rank 0 writes
        self.saved_model_file = broadcast_object(self.saved_model_file)
        self.last_model_file = last_checkpoint_file(self.saved_model_file)
        self._save_last = False  # set by fit: saved=True
        self._resumed_random_states = None  # this rank's, restored at the next epoch
        self._resumed_finished = False
        self._last_epoch = -1
        # pre_model_path: the weights training starts from (a resumed run has its own)
        self._initial_weights = config["pre_model_path"] or None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, **kwargs):
        """RecBole's ``fit``, with the run's last checkpoint saved at the start of
        every epoch and after the last one (when ``saved``); a run resumed from a
        finished checkpoint trains no further. A new run with ``pre_model_path``
        starts from that checkpoint's tensors (:meth:`load_pretrained`)."""
        if self._initial_weights is not None:
            self.load_pretrained(self._initial_weights)
            self._initial_weights = None
        self._save_last = saved
        if self._resumed_finished:
            self._resumed_finished = False
            self.logger.info(
                f"resumed after its last epoch ({self.start_epoch - 1}): "
                "nothing left to train"
            )
            return self.best_valid_score, self.best_valid_result
        result = super().fit(train_data, valid_data, verbose, saved, **kwargs)
        if saved:
            self.save_last_checkpoint(train_data, self._last_epoch, finished=True)
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.begin_epoch(train_data, epoch_idx)
        self.before_epoch(train_data, epoch_idx)
        with torch.autograd.set_detect_anomaly(bool(self.config["detect_anomaly"])):
            return super()._train_epoch(
                train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress
            )

    def begin_epoch(self, train_data, epoch_idx):
        """A resumed run's first epoch restores the saved random states; every other
        epoch saves the run's state to the last checkpoint (when ``saved``)."""
        if self._resumed_random_states is not None:
            self.set_random_states(self._resumed_random_states, train_data)
            self._resumed_random_states = None
        elif self._save_last:
            self.save_last_checkpoint(train_data, epoch_idx - 1)

    def before_epoch(self, train_data, epoch_idx):
        """What the trainer does at the start of an epoch, before its batches (an
        E-step, a refresh): none here. Runs after :meth:`begin_epoch`, so a resumed
        run does it again from the restored state."""

    def trainer_state(self):
        """What the trainer keeps between epochs and cannot recompute at the start of
        the next one, as plain data for the last checkpoint: none here."""
        return {}

    def load_trainer_state(self, state):
        """Restore what :meth:`trainer_state` returned."""

    def random_states(self, train_data):
        """This process's random states (see :mod:`recbole_ssl.randomness`)."""
        states = global_states()
        states["train_data"] = generator_state(getattr(train_data, "generator", None))
        model_state = getattr(self.model, "random_state", None)
        states["model"] = model_state() if model_state is not None else {}
        return states

    def set_random_states(self, states, train_data):
        """Restore what :meth:`random_states` returned."""
        set_global_states(states)
        generator = getattr(train_data, "generator", None)
        if generator is not None and states["train_data"] is not None:
            generator.set_state(states["train_data"]["state"])  # the loader's own
        set_model_state = getattr(self.model, "set_random_state", None)
        if set_model_state is not None:
            set_model_state(states["model"])

    def save_last_checkpoint(self, train_data, epoch, finished=False):
        """Save the run's state after ``epoch`` (-1: before the first) to
        ``last_model_file``. Every rank takes part (their random states are gathered);
        rank 0 writes."""
        states = gather_objects(self.random_states(train_data))
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        state = self.checkpoint_state(epoch)
        state.update(
            {
                "kind": LAST,
                "stage": self.stage,
                "finished": finished,
                "best_valid_result": to_plain(dict(self.best_valid_result or {})),
                "best_model_file": self.saved_model_file,
                "trainer_state": self.trainer_state(),
                "random_states": states,
                "record": None,
            }
        )
        if self.run_record is not None:
            state["record"] = {
                "path": os.path.abspath(self.run_record.path),
                "entries": len(self.run_record.data["epochs"]),
            }
        save_checkpoint(state, self.last_model_file)

    def resume(self, resume_file):
        """Continue the run whose last checkpoint is ``resume_file`` (the ``resume``
        key); :class:`recbole_ssl.trainer.S3RecTrainer` waits for the stage."""
        self.resume_checkpoint(resume_file)

    def resume_checkpoint(self, resume_file):
        """RecBole's resume (weights, optimizer, next epoch, early stopping's step and
        best score), and from a last checkpoint everything else the run had: the best
        result and checkpoint, the stage, the trainer's state and the random states.
        The run goes on writing its last checkpoint to ``resume_file``.

        Raises:
            ConfigError: not a checkpoint, another model or dataset, or saved by
                another number of processes.
        """
        checkpoint = load_checkpoint(resume_file, "resume", self.device)
        self._initial_weights = None  # the run's own weights go on
        for key in ("model", "dataset"):
            if checkpoint["config"].get(key) != self.config[key]:
                raise ConfigError(
                    f"resume: {resume_file} is a checkpoint of {key} "
                    f"{checkpoint['config'].get(key)!r}, not {self.config[key]!r}"
                )
        if checkpoint.get("kind") == LAST:
            states = checkpoint["random_states"]
            rank, world = (process_group() or (0, 1))[:2]
            if len(states) != world:
                raise ConfigError(
                    f"resume: {resume_file} was saved by {len(states)} process(es); "
                    f"resume it with nproc={len(states)} (this run has {world})"
                )
            if "cuda" in states[rank] and not torch.cuda.is_available():
                raise ConfigError(
                    f"resume: {resume_file} was saved by a run on a GPU, whose random "
                    "states cannot be restored without CUDA; resume it where CUDA is "
                    "available, or go on from its best epoch's weights (random states "
                    f"anew) with resume={checkpoint['best_model_file']}"
                )
        super().resume_checkpoint(resume_file)
        if checkpoint.get("kind") != LAST:
            self.logger.warning(
                f"resume: {resume_file} is a best-epoch checkpoint: weights, optimizer "
                "and epoch only, random states start anew (resume a '-last.pth' file "
                "to continue exactly)"
            )
            return
        self.saved_model_file = checkpoint["best_model_file"]
        self.last_model_file = str(resume_file)
        self.best_valid_result = checkpoint["best_valid_result"] or None
        self.stage = checkpoint["stage"]
        self.load_trainer_state(checkpoint["trainer_state"])
        self._resumed_random_states = states[rank]
        self._resumed_finished = bool(checkpoint["finished"])
        self._last_epoch = checkpoint["epoch"]

    def load_pretrained(self, path):
        """Initialise the model from the checkpoint at ``path`` (``pre_model_path``):
        every tensor of the model that the checkpoint holds under the same name, the
        others as initialised; logs what was loaded.

        Raises:
            ConfigError: no such file, not a checkpoint, a tensor whose shape differs
                from the model's (another dataset or architecture), or none shared.
        """
        # rank 0's file, sent to every rank (other machines have no copy)
        checkpoint = load_from_rank0(path, "pre_model_path")
        state = checkpoint["state_dict"]
        own = self.model.state_dict()
        mismatched = [
            f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})"
            for k, v in state.items()
            if k in own and v.shape != own[k].shape
        ]
        if mismatched:
            raise ConfigError(
                f"pre_model_path: {path} does not fit this model and dataset: "
                + ", ".join(mismatched[:5])
            )
        loaded = [k for k in own if k in state]
        if not loaded:
            raise ConfigError(f"pre_model_path: {path} has none of the model's tensors")
        missing = [k for k in own if k not in state]
        merged = collections.OrderedDict(own)
        merged.update({k: state[k] for k in loaded})
        self.model.load_state_dict(merged)
        self.logger.info(
            f"loaded {len(loaded)} of {len(own)} tensors from {path}"
            + (f"; kept the initial values of {missing}" if missing else "")
        )
        if self.run_record is not None:
            self.run_record.pretrained_from(path, checkpoint)

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        output = super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        # a model whose loss is a NamedTuple (``loss_parts``) gets its parts' names
        # logged instead of RecBole's train_loss1, train_loss2, ...
        names = getattr(getattr(self.model, "loss_parts", None), "_fields", ())
        if isinstance(losses, tuple) and len(names) == len(losses):
            for idx in reversed(range(len(names))):
                output = output.replace(f"train_loss{idx + 1}", names[idx])
        self._last_epoch = epoch_idx
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
        save_checkpoint(self.checkpoint_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def checkpoint_state(self, epoch):
        """What RecBole's checkpoints hold, in plain types."""
        return {
            # every final value, for reading; what the user set, to rebuild the Config
            "config": to_plain(self.config.final_config_dict),
            "external_config": to_plain(self.config.external_config_dict),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            # the file name of the run's record: a run that starts from this
            # checkpoint (pre_model_path) names it as its pretraining
            "run_record": (
                os.path.basename(self.run_record.path)
                if self.run_record is not None
                else None
            ),
        }

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, **kwargs):
        if load_best_model and eval_data and not self.config["single_spec"]:
            # rank 0 reads the checkpoint it wrote and sends it to every rank: ranks
            # on other machines have no copy of the file
            torch.distributed.barrier()  # rank 0 has finished writing the checkpoint
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_from_rank0(checkpoint_file, "checkpoint")
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(
                f"Loading model structure and parameters from {checkpoint_file} "
                "(rank 0's, sent to every rank)"
            )
            load_best_model = False
        return super().evaluate(
            eval_data, load_best_model=load_best_model, model_file=model_file, **kwargs
        )

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's full-sort scoring of one batch, or, where the batch's users x
        items scores exceed ``eval_max_scores`` and the metrics need only the top
        ``k``, the same ranks from a few users at a time (:mod:`.full_sort`)."""
        interaction, history_index, positive_u, positive_i = batched_data
        n_rows, n_items = len(interaction), self.tot_item_num
        budget = self.config["eval_max_scores"]
        if (
            budget is None
            or n_rows * n_items <= budget
            or needs_whole_table(self.eval_collector)
        ):
            return super()._full_sort_batch_eval(batched_data)
        interaction = interaction.to(self.device)

        def score_rows(start, end):
            rows = interaction[torch.arange(start, end, device=self.device)]
            return self.model.full_sort_predict(rows).view(end - start, n_items)

        table, column = top_k_scores(
            score_rows,
            n_rows,
            history_index,
            positive_u,
            positive_i,
            max(self.eval_collector.topk),
            max(1, budget // n_items),
        )
        return interaction, table, positive_u, column

    def _map_reduce(self, result, num_sample):
        """Every rank's ``result`` already covers all users (:class:`GlobalCollector`):
        nothing left to reduce."""
        if isinstance(self.eval_collector, GlobalCollector):
            return result
        return super()._map_reduce(result, num_sample)


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
