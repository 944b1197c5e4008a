"""recbole_ssl.model.abstract_recommender: the base of the plugin's sequential models.

It adds the next-item loss in both training regimes (``train_mode``, see
:mod:`recbole_ssl.data.dataset`): ``prefix`` scores the last position of each row, as
RecBole does; ``sequence`` scores every real position of a user's longest prefix.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_ssl.randomness import generator_from_state, generator_state


class SequentialSSLRecommender(SequentialRecommender):
    """A ``SequentialRecommender`` whose next-item loss follows ``train_mode``.

    Subclasses encode a batch into ``[B, L, H]`` position outputs and call
    :meth:`next_item_loss`. Config keys read: ``train_mode``, ``loss_type``.
    """

    supports_sequence_mode = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.train_mode = config["train_mode"]
        self.loss_type = config["loss_type"]
        if self.loss_type not in ("CE", "BPR"):
            raise NotImplementedError("Make sure 'loss_type' in ['BPR', 'CE']!")
        self.bpr_loss = BPRLoss()

    def random_generators(self):
        """``{name: component}`` of the components that own a ``generator`` attribute
        (a ``torch.Generator``, or None until first used): what a resumed run restores
        beside torch's global state. None here; CL4SRec's family has two."""
        return {}

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

    def sample_negatives(self, target):
        """One item per target, uniform over all real items except the target."""
        negative = torch.randint(
            1, self.n_items - 1, target.shape, device=target.device
        )
        return negative + (negative >= target).long()  # skip over the target

    def next_item_loss(self, seq_output, interaction, item_weight, reduction="mean"):
        """Next-item loss of ``seq_output`` ([B, L, H]) against ``item_weight`` ([n_items, H]).

        CE: softmax over all items (padding included, as RecBole's SASRec does).
        BPR: one negative per target: RecBole's sampled ``NEG_ITEM_ID`` in the
        ``prefix`` regime; in the ``sequence`` regime, one item drawn uniformly from
        all items but the target, per position.
        With ``reduction="none"`` the losses of the scored positions come back in
        row-major (row, position) order.
        """
        targets = self.next_item_targets(interaction)
        scored = targets > 0
        output = seq_output[scored]  # [N, H]
        target = targets[scored]  # [N]
        if self.loss_type == "CE":
            logits = output @ item_weight.t()  # [N, n_items]
            return F.cross_entropy(logits, target, reduction=reduction)
        if self.train_mode == "prefix":
            negative = interaction[self.NEG_ITEM_ID]
        else:
            negative = self.sample_negatives(target)
        pos_score = (output * item_weight[target]).sum(-1)
        neg_score = (output * item_weight[negative]).sum(-1)
        if reduction == "none":
            return -torch.log(1e-10 + torch.sigmoid(pos_score - neg_score))
        return self.bpr_loss(pos_score, neg_score)
