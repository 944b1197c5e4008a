"""recbole_ssl.model.abstract_recommender: the base of the plugin's sequential models.

It adds the next-item loss in both training regimes (``train_mode``, see
:mod:`recbole_ssl.data.dataset`): ``prefix`` scores the last position of each row, as
RecBole does; ``sequence`` scores every real position of a user's longest prefix.
"""

import torch
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_ssl.errors import ConfigError, check_choice, check_integer
from recbole_ssl.model.layers import take_rows
from recbole_ssl.model.losses import (
    bce_next_item,
    bpr_next_item,
    cross_entropy,
    sampled_softmax,
)
from recbole_ssl.model.negatives import (
    SSM_DISTRIBUTIONS,
    NegativeSampler,
    SharedNegativeSampler,
)
from recbole_ssl.randomness import generator_from_state, generator_state

LOSS_TYPES = ("CE", "BCE", "BPR", "SSM")


def check_loss_type(model, loss_type, allowed):
    """One line naming ``loss_type`` when ``model`` cannot train with it."""
    if loss_type in LOSS_TYPES and loss_type not in allowed:
        raise ConfigError(
            f"loss_type {loss_type!r} is not one {model} can train with (its "
            f"next-item loss is its own): use one of {list(allowed)}"
        )
    check_choice("loss_type", loss_type, allowed)


class SequentialSSLRecommender(SequentialRecommender):
    """A ``SequentialRecommender`` whose next-item loss follows ``train_mode``.

    Subclasses encode a batch into ``[B, L, H]`` position outputs and call
    :meth:`next_item_loss`. Config keys read: ``train_mode``, ``loss_type``,
    ``ssm_distribution``, ``ssm_logq`` (SSM),
    ``train_neg_num``, ``seed``.
    """

    supports_sequence_mode = True
    loss_types = LOSS_TYPES  # a model whose next-item loss is its own may take fewer

    def __init__(self, config, dataset):
        loss_type = config["loss_type"]
        check_loss_type(type(self).__name__, loss_type, self.loss_types)
        # RecBole's SASRec.__init__ (below this class in its models' order) rejects
        # any loss but BPR and CE; its loss object is never used here, so under BCE
        # or SSM it builds its layers with BPR's name, and the config gets ours back
        if loss_type in ("BCE", "SSM"):
            config["loss_type"] = "BPR"
        try:
            super().__init__(config, dataset)
        finally:
            config["loss_type"] = loss_type
        self.train_mode = config["train_mode"]
        self.loss_type = loss_type
        self.negatives = None  # the sampled losses' NegativeSampler
        if self.loss_type == "SSM":
            check_integer("train_neg_num", config["train_neg_num"], 1)
            check_choice(
                "ssm_distribution", config["ssm_distribution"], SSM_DISTRIBUTIONS
            )
            check_choice("ssm_logq", config["ssm_logq"], (True, False))
            self.train_neg_num = config["train_neg_num"]
            self.ssm_logq = config["ssm_logq"]
            # seeded without the rank: every rank draws the batch's same negatives
            self.negatives = SharedNegativeSampler.from_dataset(
                dataset, config["ssm_distribution"], seed=config["seed"] or 0
            )
        elif self.loss_type != "CE":
            check_integer("train_neg_num", config["train_neg_num"], 1)
            self.train_neg_num = config["train_neg_num"]
            self.negatives = NegativeSampler.for_rank(dataset, config)

    def random_generators(self):
        """``{name: component}`` of the components that own a ``generator`` attribute
        (a ``torch.Generator``, or None until first used): what a resumed run restores
        beside torch's global state: the negative sampler's, for BCE and BPR."""
        return {} if self.negatives is None else {"negatives": self.negatives}

    def random_state(self):
        """The state of every generator of :meth:`random_generators`, as plain data."""
        return {
            name: generator_state(component.generator)
            for name, component in self.random_generators().items()
        }

    def set_random_state(self, state):
        """Restore what :meth:`random_state` returned."""
        for name, component in self.random_generators().items():
            component.generator = generator_from_state(state.get(name))

    def next_item_targets(self, interaction):
        """The item each position must predict, 0 where no loss applies.  # [B, L]

        ``prefix``: only the last real position, whose target is ``POS_ITEM_ID``.
        ``sequence``: every real position; position t predicts the item at t + 1 and
        the last one predicts ``POS_ITEM_ID``.
        """
        item_seq = interaction[self.ITEM_SEQ]
        last = interaction[self.ITEM_SEQ_LEN] - 1
        rows = torch.arange(item_seq.size(0), device=item_seq.device)
        targets = torch.zeros_like(item_seq)
        if self.train_mode == "sequence":
            targets[:, :-1] = item_seq[:, 1:]  # right padding keeps 0 after the end
        targets[rows, last] = interaction[self.POS_ITEM_ID]
        return targets

    def next_item_negatives(self, interaction, targets, scored):
        """``train_neg_num`` negatives per scored position  # [N, k]

        Uniform over the items the user has not had in the training part
        (:class:`recbole_ssl.model.negatives.NegativeSampler`); in the ``prefix``
        regime RecBole's own ``NEG_ITEM_ID``, where ``train_neg_sample_args`` makes
        RecBole's loader draw one.
        """
        if self.train_mode == "prefix" and self.NEG_ITEM_ID in interaction.columns:
            return interaction[self.NEG_ITEM_ID][:, None]
        users = interaction[self.USER_ID][:, None].expand_as(targets)[scored]
        return self.negatives.sample(users, self.train_neg_num)

    def next_item_loss(self, seq_output, interaction, item_weight, reduction="mean"):
        """Next-item loss of ``seq_output`` ([B, L, H]) against ``item_weight`` ([n_items, H]).

        CE: softmax over all items (padding included, as RecBole's SASRec does).
        BCE (the papers' code) and BPR: against :meth:`next_item_negatives`, by
        :func:`recbole_ssl.model.losses.bce_next_item` / ``bpr_next_item``.
        With ``reduction="none"`` the losses of the scored positions come back in
        row-major (row, position) order.
        """
        targets = self.next_item_targets(interaction)
        scored = targets > 0
        output = seq_output[scored]  # [N, H]
        target = targets[scored]  # [N]
        if self.loss_type == "CE":
            logits = output @ item_weight.t()  # [N, n_items]
            return cross_entropy(logits, target, reduction=reduction)
        if self.loss_type == "SSM":
            return self.sampled_softmax_loss(output, target, item_weight, reduction)
        return self.sampled_next_item_loss(
            interaction,
            targets,
            lambda items: torch.einsum(
                "nh,nmh->nm", output, take_rows(item_weight, items)
            ),
            reduction,
        )

    def sampled_softmax_loss(self, output, target, item_weight, reduction="mean"):
        """``loss_type: SSM``: each scored position's target against ``train_neg_num``
        negatives drawn once for the batch (:class:`SharedNegativeSampler`), scores
        ``output . item_weight``, the logQ correction with ``ssm_logq``. ``output``
        ``[N, H]``, ``target`` ``[N]``."""
        negatives = self.negatives.sample(self.train_neg_num, output.device)  # [m]
        pos_score = (output * take_rows(item_weight, target)).sum(-1)  # [N]
        neg_score = output @ take_rows(item_weight, negatives).t()  # [N, m]
        log_q = {}
        if self.ssm_logq:
            log_q = {
                "pos_log_q": self.negatives.log_q(target),
                "neg_log_q": self.negatives.log_q(negatives),
            }
        accidental = target[:, None] == negatives[None, :]
        return sampled_softmax(
            pos_score, neg_score, accidental, reduction=reduction, **log_q
        )

    def sampled_next_item_loss(self, interaction, targets, score, reduction="mean"):
        """BCE or BPR (``loss_type``) of each scored position's target against its
        :meth:`next_item_negatives`.

        ``targets`` ``[B, L]`` (0: not scored); ``score(items)`` gives the scores of
        ``items`` ``[N, m]`` at the N scored positions, row-major  # [N, m]
        """
        scored = targets > 0
        negative = self.next_item_negatives(interaction, targets, scored)  # [N, k]
        scores = score(torch.cat([targets[scored][:, None], negative], dim=1))
        loss = bce_next_item if self.loss_type == "BCE" else bpr_next_item
        return loss(scores[:, 0], scores[:, 1:], reduction)
