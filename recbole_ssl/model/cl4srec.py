"""CL4SRec: SASRec trained with a contrastive loss between two random augmentations."""

from typing import NamedTuple

import torch

from recbole_ssl.data.augment import SequenceAugmenter
from recbole_ssl.distributed import is_distributed
from recbole_ssl.errors import check_choice, check_integer, check_number
from recbole_ssl.model.losses import (
    REPRESENTATIONS,
    SIMILARITIES,
    concat_gram,
    nt_xent,
    nt_xent_from_similarity,
    sequence_representation,
    similarity_matrix,
)
from recbole_ssl.model.sasrec import SASRec


class ContrastiveLoss(NamedTuple):
    """The two parts of Eq. 15; RecBole's trainer sums them and logs each."""

    rec_loss: torch.Tensor  # L_rec, next-item prediction
    cl_loss: torch.Tensor  # lambda * L_ssl


class CL4SRec(SASRec):
    r"""CL4SRec: Contrastive Learning for Sequential Recommendation (Xie et al., 2020,
    arXiv:2010.14395), as the random-augmentation baseline of CoSeRec (Liu et al.,
    2021, arXiv:2108.06479).

    A SASRec encoder trained on ``L = L_rec + lambda * L_ssl`` (CoSeRec Eq. 15): every
    training sequence gets two views, each from one operator drawn from ``crop``,
    ``mask`` and ``reorder`` (:mod:`recbole_ssl.data.augment`), and NT-Xent
    (:mod:`recbole_ssl.model.losses`) pulls the two views of a sequence
    together against the other 2(N - 1) views of the batch. The original sequence and
    both views go through the encoder in one batched forward pass.

    NOTE:
        * The mask token is a dedicated item id, ``n_items`` (the embedding table has
          one extra row, never scored); the authors' code masks with the padding id.
        * ``cl_representation: concat`` concatenates the outputs at all positions as
          the paper does, aligned on the most recent item with padding zeroed; the
          authors' code concatenates left-padded outputs, padding included.
        * ``train_mode: sequence`` (the default) scores the next item at every
          position of a user's training sequence and augments that sequence, as the
          authors' code does; with the CE loss instead of their one-negative BCE.
        * Crop draws its window start uniformly over all ``n - c + 1`` starts and
          counts use ``ceil`` as in the paper (the authors' code uses ``int`` and never
          crops the window ending at the last item).
        * No projection head: the authors' CoSeRec code defines one but never uses it.
        * The augmentation defaults (crop 0.2, mask 0.7, reorder 0.2) and ``cl_weight``
          0.1 are the defaults of the ICLRec and CoSeRec authors' code (in the ICLRec
          code, ``--contrast_type InstanceCL`` trains SeqCL alone, i.e. CL4SRec).
          Neither paper states the ratios; CoSeRec's defers to CL4SRec's optima.
        * Views augment the model's input, the last ``MAX_ITEM_LIST_LENGTH`` items of
          the sequence; the authors' code augments the whole training sequence, then
          keeps the last ``max_seq_length`` items of each view. The two differ only for
          users with more training items than that (e.g. a crop's window can start
          anywhere in their history there, only among the last 50 items here).
        * ``L_ssl`` is the mean over the 2N anchors of NT-Xent, i.e. over both
          directions of each pair (CoSeRec Algorithm 1, line 15, and the authors'
          code).
        * Similarity: ``cos`` with temperature 0.2 by default, where the papers use the
          dot product with temperature 1. With the CE next-item loss, the dot product
          of 50 x 64 concatenated outputs gives the contrastive term 65 times the
          gradient of the next-item term on the encoder at initialisation on Beauty
          (32 times with ``last``; benchmarks/contrastive_gradients.py), and it held the
          next-item loss near its uniform level for many epochs (validation NDCG@20
          0.036 after 18 epochs, where SASRec reaches it after 4; one seed each;
          results/amazon-beauty.md).
          Cosine with 0.2 puts both terms on the same scale. ``cl_similarity: dot``
          and ``cl_temperature: 1.0`` restore the papers' setting.
    """

    loss_parts = ContrastiveLoss

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.cl_weight = config["cl_weight"]
        self.cl_temperature = config["cl_temperature"]
        self.cl_similarity = config["cl_similarity"]
        self.cl_representation = config["cl_representation"]

        self.add_mask_token()  # one extra item row, id n_items
        self.augmenter = SequenceAugmenter.from_config(config, self.mask_token)
        self.item_correlation = None  # set by the trainer when an operator needs it

    @classmethod
    def check_config(cls, config):
        """Clear errors for bad contrastive settings, before any data is loaded."""
        SequenceAugmenter.from_config(config, mask_token=0)  # ratios, operators, K
        check_choice("cl_representation", config["cl_representation"], REPRESENTATIONS)
        check_choice("cl_similarity", config["cl_similarity"], SIMILARITIES)
        check_number("cl_weight", config["cl_weight"], 0)
        check_number("cl_temperature", config["cl_temperature"], 0, low_open=True)
        check_integer("correlation_warm_up", config["correlation_warm_up"], 0)
        check_integer("correlation_topk", config["correlation_topk"], 1)

    @property
    def needs_item_correlation(self):
        """Whether an operator set holds ``substitute`` or ``insert``."""
        return self.augmenter.needs_correlation

    def set_item_correlation(self, correlation):
        """Attach the :class:`ItemCorrelation` that ``substitute`` and ``insert`` use."""
        self.item_correlation = correlation
        self.augmenter.set_correlation(correlation)

    def random_generators(self):
        """The augmenter's generator and the item correlation's (which draws among
        the top-``k`` correlated items)."""
        generators = dict(super().random_generators(), augmenter=self.augmenter)
        if self.item_correlation is not None:
            generators["item_correlation"] = self.item_correlation
        return generators

    def augment_views(self, item_seq, item_seq_len):
        """Two augmented views of every sequence: ``(views [2B, L], lengths [2B])``."""
        return self.augmenter(item_seq.repeat(2, 1), item_seq_len.repeat(2))

    def contrastive_loss(self, view_output, view_len):
        """NT-Xent between the first and the second half of the encoded views.

        In a distributed run the negatives are every rank's views (:func:`nt_xent`)."""
        if is_distributed():
            vectors = sequence_representation(
                view_output, view_len, self.cl_representation
            )
            return nt_xent(*vectors.chunk(2), self.cl_temperature, self.cl_similarity)
        if self.cl_representation == "concat":
            gram = concat_gram(view_output, view_len)  # skips the zero padding slots
        else:
            vectors = sequence_representation(
                view_output, view_len, self.cl_representation
            )
            gram = vectors @ vectors.t()
        similarity = similarity_matrix(gram, self.cl_similarity)
        return nt_xent_from_similarity(similarity / self.cl_temperature)

    def encode_with_views(self, interaction):
        """The batch's sequences and two augmented views of each, in one encoder pass.

        Returns ``(seq_output [B, L, H], view_output [2B, L, H], view_len [2B])``.
        """
        item_seq = interaction[self.ITEM_SEQ]
        views, view_len = self.augment_views(item_seq, interaction[self.ITEM_SEQ_LEN])
        output = self.encode(torch.cat([item_seq, views]))  # [3B, L, H]
        return output[: item_seq.size(0)], output[item_seq.size(0) :], view_len

    def calculate_loss(self, interaction):
        seq_output, view_output, view_len = self.encode_with_views(interaction)
        rec_loss = self.next_item_loss(seq_output, interaction, self.item_weight)
        cl_loss = self.contrastive_loss(view_output, view_len)
        return ContrastiveLoss(rec_loss, self.cl_weight * cl_loss)
