"""recbole_ssl.trainer.contrastive: trainers of the augmentation-based models.

One hook beyond RecBole's ``Trainer``: the item correlation that the ``substitute``
and ``insert`` augmentations need. It is built from the training split once, before
the first epoch, and refreshed at the start of every epoch from
``correlation_warm_up`` on (CoSeRec Algorithm 1, lines 2-5), in :meth:`before_epoch`.
Under distributed training every rank uses rank 0's tables. A resumed run rebuilds the
ItemCF-IUF table from the data and refreshes the hybrid from the restored weights, as
the uninterrupted run did at that epoch's start.
"""

import time

from recbole_ssl.data.correlation import ItemCorrelation
from recbole_ssl.distributed import broadcast_from_rank0
from recbole_ssl.trainer.trainer import Trainer


class ContrastiveTrainer(Trainer):
    """Trainer of CL4SRec and CoSeRec: maintains the model's item correlation."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.correlation_warm_up = config["correlation_warm_up"]
        self.correlation_topk = config["correlation_topk"]

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, **kwargs):
        if self.model.needs_item_correlation and self.model.item_correlation is None:
            self.build_item_correlation(train_data._dataset)
        return super().fit(train_data, valid_data, verbose, saved, **kwargs)

    def build_item_correlation(self, dataset):
        """ItemCF-IUF (CoSeRec Eq. 9) from the training split, the same on every rank."""
        correlation = ItemCorrelation.from_dataset(
            dataset,
            k=self.correlation_topk,
            seed=self.config["seed"] + (self.config["local_rank"] or 0),
        )
        correlation.memory_neighbours = broadcast_from_rank0(
            correlation.memory_neighbours
        )
        correlation.memory_scores = broadcast_from_rank0(correlation.memory_scores)
        correlation.use_memory_based()
        self.model.set_item_correlation(correlation.to(self.device))
        self.logger.info(
            f"item correlation: ItemCF-IUF top-{correlation.k} of {correlation.n_items}"
            f" items; hybrid from epoch {self.correlation_warm_up}"
        )

    def refresh_item_correlation(self, epoch_idx):
        """From the warm-up epoch on, use the hybrid with the current embeddings."""
        correlation = self.model.item_correlation
        if correlation is None or epoch_idx < self.correlation_warm_up:
            return
        keep_memory = correlation.refresh_model_based(self.model.item_weight)
        correlation.neighbours = broadcast_from_rank0(correlation.neighbours)
        self.logger.info(
            f"epoch {epoch_idx}: hybrid item correlation, memory-based for "
            f"{keep_memory.float().mean().item():.1%} of items"
        )

    def before_epoch(self, train_data, epoch_idx):
        super().before_epoch(train_data, epoch_idx)
        self.refresh_item_correlation(epoch_idx)


class CL4SRecTrainer(ContrastiveTrainer):
    """CL4SRec's trainer (a correlation is built only if its operators need one)."""


class CoSeRecTrainer(ContrastiveTrainer):
    """CoSeRec's trainer: ItemCF-IUF before training, the hybrid after warm-up."""


class ICLRecTrainer(ContrastiveTrainer):
    """ICLRec's trainer: the E-step (intent clustering) at the start of an epoch.

    From ``intent_warm_up`` on, every ``intent_frequency`` epochs, before the epoch's
    batches, every user's training sequence is encoded once with the model in eval mode
    and clustered (ICLRec Algorithm 1, lines 2-3); the model then returns to the mode
    it was in. The M-step is the model's ``calculate_loss``.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.intent_warm_up = config["intent_warm_up"]
        self.intent_frequency = config["intent_frequency"]
        self._intent_sequences = None

    def intent_sequences(self, train_data):
        """One sequence per user: its longest training prefix (cached)."""
        if self._intent_sequences is None:
            dataset = train_data._dataset
            if self.config["train_mode"] != "sequence":
                dataset = dataset.longest_prefix_rows(dataset)
            feat = dataset.inter_feat
            self._intent_sequences = (
                feat[self.model.ITEM_SEQ],
                feat[self.model.ITEM_SEQ_LEN],
                feat[self.model.USER_ID],
            )
        return self._intent_sequences

    def is_e_step_epoch(self, epoch_idx):
        since = epoch_idx - self.intent_warm_up
        return since >= 0 and since % self.intent_frequency == 0

    def intent_e_step(self, train_data, epoch_idx):
        """Cluster every user's sequence if ``epoch_idx`` is an E-step epoch."""
        if not self.is_e_step_epoch(epoch_idx):
            return False
        was_training = self.model.training
        self.model.eval()
        start = time.perf_counter()
        try:
            item_seq, item_seq_len, users = self.intent_sequences(train_data)
            self.model.intents.estimate(
                self.model.intent_representation,
                item_seq,
                item_seq_len,
                users,
                self.config["eval_batch_size"],
                self.device,
            )
        finally:
            self.model.train(was_training)
        self.logger.info(
            f"epoch {epoch_idx}: E-step, {len(users)} sequences into "
            f"{self.model.intents.k} intents in {time.perf_counter() - start:.2f}s"
        )
        return True

    def before_epoch(self, train_data, epoch_idx):
        super().before_epoch(train_data, epoch_idx)
        self.intent_e_step(train_data, epoch_idx)

    def trainer_state(self):
        """The last E-step's centroids and intents (used until the next E-step)."""
        return dict(super().trainer_state(), intents=self.model.intents.state())

    def load_trainer_state(self, state):
        super().load_trainer_state(state)
        self.model.intents.load_state(state["intents"], self.device)
