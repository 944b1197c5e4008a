"""S3-Rec: self-supervised pretraining with mutual information maximisation, then finetuning."""

from logging import getLogger
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ssl.data.attributes import (
    attribute_fields,
    attribute_targets,
    load_item_attributes,
)
from recbole_ssl.distributed import gather_rows, global_mean, global_sum
from recbole_ssl.errors import check_choice, check_number
from recbole_ssl.model.layers import take_rows
from recbole_ssl.model.negatives import NegativeSampler
from recbole_ssl.model.sasrec import SASRec

STAGES = ("pretrain", "finetune")
PRETRAIN_LOSS_TYPES = ("InfoNCE", "BCE")
PRETRAIN_REDUCTIONS = ("mean", "sum")


class S3RecPretrainLoss(NamedTuple):
    """The four weighted pretraining objectives; RecBole's trainer sums and logs them."""

    aap_loss: torch.Tensor  # associated attribute prediction (item - attributes)
    mip_loss: torch.Tensor  # masked item prediction (context - item)
    map_loss: torch.Tensor  # masked attribute prediction (context - attributes)
    sp_loss: torch.Tensor  # segment prediction (context - segment)


class PretrainBatch(NamedTuple):
    """The tensors one pretraining step needs, built from a batch of sequences."""

    sequence: torch.Tensor  # [B, L] the training sequences, target appended
    length: torch.Tensor  # [B]
    masked_sequence: torch.Tensor  # [B, L] with masked items replaced by the token
    item_mask: torch.Tensor  # [B, L] bool, the masked positions
    segment_context: torch.Tensor  # [B, L] the sequence with a segment masked
    pos_segment: torch.Tensor  # [B, L] only that segment, the rest masked
    neg_segment: torch.Tensor  # [B, L] another sequence's items in its place
    has_segment: torch.Tensor  # [B] bool, rows long enough for a segment (>= 2)
    negative: torch.Tensor | None = None  # [B, L] BCE: a sampled item per position


def append_item(item_seq, lengths, item):
    """Right-padded ``item_seq`` with ``item`` appended after each row's last item.

    A full row (``lengths == L``) drops its oldest item to make room.
    Returns ``(sequence [B, L], lengths [B])``.
    """
    batch, width = item_seq.shape
    rows = torch.arange(batch, device=item_seq.device)
    longer = torch.cat([item_seq, item_seq.new_zeros(batch, 1)], dim=1)
    longer[rows, lengths] = item
    full = (lengths == width)[:, None]
    sequence = torch.where(full, longer[:, 1:], longer[:, :width])
    return sequence, torch.clamp(lengths + 1, max=width)


def info_nce(logits, positives, reduction="mean"):
    """InfoNCE for each positive of each row, against that row's negatives.

    ``logits`` ``[N, C]`` scores, ``positives`` ``[N, C]`` bool. For every positive
    ``p`` of row ``n``: ``-log(exp(s_p) / (exp(s_p) + sum over negatives exp(s)))``,
    the other positives of the row left out of the denominator. Returns the mean over
    each row's positives, then over the rows that have one (0 if none has);
    ``reduction="none"``: the per-row means of the rows that have one.
    """
    negatives = logits.masked_fill(positives, float("-inf"))
    neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)  # [N, 1]
    loss = torch.logaddexp(logits, neg_lse) - logits  # [N, C]
    count = positives.sum(1)
    per_row = (loss * positives).sum(1) / count.clamp(min=1)
    if reduction == "none":
        return per_row[count > 0]
    return global_mean(per_row[count > 0])  # every rank's rows with a positive


def binary_cross_entropy(logits, positives):
    """Per row, binary cross-entropy summed over its ``C`` candidates: each positive
    ``-log sigmoid(s)``, each other ``-log(1 - sigmoid(s))`` (the authors' AAP and
    MAP, ``nn.BCELoss`` on sigmoid scores). ``logits`` and ``positives`` ``[N, C]``;
    returns ``[N]``, the rows with at least one positive only."""
    loss = F.binary_cross_entropy_with_logits(
        logits, positives.to(logits.dtype), reduction="none"
    ).sum(1)
    return loss[positives.any(1)]


def sigmoid_margin(pos_score, neg_score):
    """``-log sigmoid(sigmoid(s+) - sigmoid(s-))`` per pair (the authors' MIP and SP:
    ``nn.BCELoss`` of the sigmoid of the difference of two sigmoid scores against 1).
    Bounded: from ``-log sigmoid(1)`` (0.31) to ``-log sigmoid(-1)`` (1.31)."""
    return -F.logsigmoid(torch.sigmoid(pos_score) - torch.sigmoid(neg_score))


class S3Rec(SASRec):
    r"""S3-Rec: Self-Supervised Learning for Sequential Recommendation with Mutual
    Information Maximization (Zhou et al., CIKM 2020, arXiv:2008.07873).

    A SASRec encoder pretrained with four objectives, then finetuned on the next item.
    Pretraining (``stage == "pretrain"``, set by :class:`S3RecTrainer`) encodes with
    **bidirectional** attention; finetuning and prediction are causal. Each objective
    scores two views with its own bilinear matrix ``W`` (paper Eqs. 11, 13, 15, 17):

    * AAP: the output at each unmasked position vs the item's attributes,
    * MIP: the output at each masked position vs the masked item (mask ratio 0.2),
    * MAP: the output at each masked position vs the masked item's attributes,
    * SP: the sequence with a segment masked vs that segment, with the same
      positions filled from another sequence of the batch as the negative,

    weighted 0.2 / 1.0 / 1.0 / 0.5. Masks, segments and negatives are drawn on
    tensors for the whole batch. ``item_attribute`` names one ``.item`` field or a list
    (:mod:`recbole_ssl.data.attributes`); without one (``item_attribute: ~`` or no
    ``.item`` file) AAP and MAP are off: the S3-Rec_ISP variant.

    NOTE (where this differs from the paper or the authors' code). "Authors" is
    RUCAIBox/CIKM2020-S3Rec (commit 2a81540), cited as file:line; the paper's
    sections and equations are those of the CIKM version.

    Objectives:
        * The objectives are InfoNCE (paper Eq. 3 form, softmax over the positive and
          its negatives) with the bilinear score itself as the critic. The paper
          writes ``f = sigmoid(e^T W e)`` inside the exponent (Eqs. 11, 13, 15, 17),
          which bounds every logit to (0, 1), and Eqs. 10, 12, 14 and 16 as printed
          leave the positive out of the denominator; the authors' code instead trains
          AAP/MAP with binary cross-entropy over all attributes (models.py:103, 121)
          and MIP/SP with ``-log sigmoid(f+ - f-)`` on sigmoid scores
          (models.py:114-115, 157-160). MIP's negatives are all items (a softmax over
          the item table, Eq. 12 with every item as a candidate; the authors draw one
          item not in the sequence per masked position, datasets.py:39, 46), AAP's
          and MAP's all attributes the item does not have (Eqs. 10, 14; Eq. 10's
          text samples them), SP's the other sequence's segment (Eq. 16).
          ``pretrain_loss_type: BCE`` gives the authors' forms instead: BCE over all
          attributes (the item's real ones, as below) and, for MIP and SP,
          ``-log sigmoid(sigmoid(f+) - sigmoid(f-))``, MIP against one item per
          masked position, uniform over the items the row's user has not had in
          training (theirs: not in the row's own sequence, possibly their mask id).
        * MIP's softmax runs over the real items only, rows ``1 .. n_items - 1`` of
          :attr:`item_weight` (Eq. 12's candidates are items; the authors' negative is
          never the padding id 0, utils.py:32-36). The first Beauty S3-Rec runs
          (seed 2020 of the CE defaults and of S3Rec_ISP, records transcribed from
          their logs at 48b4110) were made with the padding row as one more
          candidate (about ``1 / n_items`` of the softmax at the start: about 8e-5
          nats on Beauty against a loss of about 9.4); every later run without it.
          The finetuning CE scores row 0 as RecBole's SASRec does; evaluation never
          ranks item 0.
        * Each objective is the mean over its scored positions (rows for SP); the
          authors sum over positions and attributes (models.py:107, 117, 123, 159),
          so their weights act on sums: ``pretrain_reduction: sum``.
        * AAP uses the encoder output at the item's (unmasked) position, as the
          authors' code does (models.py:102-107); the paper's text (Eqs. 10-11) uses
          the item embedding.
        * AAP and MAP score the real attributes only: an item without attributes
          adds nothing. The authors' BCE also scores the padding attribute row 0
          (models.py:100) and pushes every attribute of such an item down.
        * The four heads ``W`` have no bias, as Eqs. 11, 13, 15 and 17; the authors'
          are ``nn.Linear`` with a (zero-initialised) bias (models.py:21-24).
        * The mask token is its own item id (``n_items``), never scored. The authors'
          ``mask_id`` (run_pretrain.py:78) is a row of the item table that their
          finetuning scores (trainers.py:117-122) and that their MIP negative
          sampler can draw (utils.py:32-36 draws from ``1 .. item_size - 1``).

    Masks and segments:
        * The last item of each pretraining sequence is always masked, as in the
          authors' code (datasets.py:44-46; the rest with probability
          ``mask_ratio``). In ``sequence`` rows only the user's last training item
          gets this forced mask (predicted from its left context only); in the
          authors' rows every training item does once per epoch, as the last item of
          its own prefix.
        * The negative segment for SP is taken from another row of the batch,
          starting at a random position and wrapping around if that row is shorter:
          training items only, never the row's own (in ``prefix`` rows it can be
          another prefix of the same user). The authors cut it, without wrapping,
          from one list of every user's full sequence (datasets.py:56,
          utils.py:153-167), so it can hold the user's own items and validation and
          test items.
        * Rows of fewer than 2 items (and every row of a one-row batch) have no
          segment and are left out of SP; the authors use the sequence itself as
          context, positive and negative (datasets.py:49-52) and keep its loss.
        * Sequences are right-padded (RecBole), so a row's first item has position 0;
          the authors left-pad (datasets.py:71-85), so there the last item always has
          position ``max_seq_length - 1``. SP's summaries are the outputs at the last
          real position (their last column: the same item).

    Rows, batches and epochs:
        * Pretraining rows follow ``train_mode``. ``sequence`` (the default)
          pretrains on one row per user: the last 50 of its training items (its
          training sequence with the target appended), as the authors' longest
          prefix. The authors pretrain on every prefix of those items, one row per
          item (datasets.py:18-22): on Beauty 150,258 rows against 22,363, so about
          7 times the SP examples and forced last-item masks per epoch. ``prefix``
          gives RecBole's rows, one per training target: every prefix of 2 or more
          items (the authors' also have the 1-item prefix), and for users with more
          than 50 training items windows of the 50 items up to each target rather
          than prefixes of the last 50.
        * Both stages use ``train_batch_size`` (256): the paper pretrains with
          batches of 200 (Sec. 5.1, Implementation Details; 256 for finetuning), the
          authors' default is 100 (run_pretrain.py:49; 256 for finetuning,
          run_finetune_sample.py:40). RecBole's trainer runs both stages on one
          loader. With ``sequence`` rows a batch holds 256 users (about 1,760
          training items on Beauty), and a Beauty epoch is 88 steps against the
          authors' ~1,500.
        * ``pretrain_epochs`` is 100, as the paper (Sec. 5.1); the authors' default
          is 300 (run_pretrain.py:48), saving every 10 epochs, and their reproduce/
          README finetunes from epoch 150 (Beauty, Toys, LastFM) or 100 (Sports,
          Yelp). With their rows, batch and objectives (``train_mode: prefix``,
          ``train_batch_size: 100``, ``pretrain_loss_type: BCE``,
          ``pretrain_reduction: sum``), 10 pretraining epochs here fine-tune to
          the paper's Beauty figure (test NDCG@10 0.0330 against 0.0327, one seed;
          results/amazon-beauty.md, "S3-Rec under its paper preset").
        * Finetuning uses the plugin's next-item loss: CE by default, where the
          authors' finetuning uses BCE with one negative (trainers.py:92-108),
          which ``loss_type: BCE`` gives.
    """

    loss_parts = S3RecPretrainLoss

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.logger = getLogger()
        self.stage = "finetune"  # the trainer switches to "pretrain" and back
        self.mask_ratio = config["mask_ratio"]
        self.aap_weight = config["aap_weight"]
        self.mip_weight = config["mip_weight"]
        self.map_weight = config["map_weight"]
        self.sp_weight = config["sp_weight"]
        self.pretrain_loss_type = config["pretrain_loss_type"]
        self.pretrain_reduction = config["pretrain_reduction"]
        self.pretrain_negatives = None  # MIP's sampled negatives, BCE only
        if self.pretrain_loss_type == "BCE":
            self.pretrain_negatives = NegativeSampler.for_rank(dataset, config)
        self.add_mask_token()

        self.attributes = load_item_attributes(
            dataset, config["item_attribute"], self.logger, "S3Rec (S3-Rec_ISP)"
        )
        if self.attributes is not None:
            self.register_buffer("attribute_table", self.attributes.table, False)
            self.attribute_embedding = nn.Embedding(
                self.attributes.n_attributes + 1, self.hidden_size, padding_idx=0
            )
            self.aap_linear = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
            self.map_linear = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        self.mip_linear = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        self.sp_linear = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        self.apply(self._init_weights)

    @classmethod
    def check_config(cls, config):
        """Clear errors for bad S3-Rec settings, before any data is loaded."""
        check_number("mask_ratio", config["mask_ratio"], 0, 1)
        for key in ("aap_weight", "mip_weight", "map_weight", "sp_weight"):
            check_number(key, config[key], 0)
        check_choice(
            "pretrain_loss_type", config["pretrain_loss_type"], PRETRAIN_LOSS_TYPES
        )
        check_choice(
            "pretrain_reduction", config["pretrain_reduction"], PRETRAIN_REDUCTIONS
        )
        attribute_fields(config["item_attribute"])
        check_choice(
            "train_stage",
            config["train_stage"],
            ("pretrain_finetune", "pretrain", "finetune"),
        )

    @property
    def has_attributes(self):
        """False for S3-Rec_ISP: AAP and MAP are off."""
        return self.attributes is not None

    def random_generators(self):
        """Beside the next-item loss's sampler, MIP's (``pretrain_loss_type: BCE``)."""
        generators = super().random_generators()
        if self.pretrain_negatives is not None:
            generators["pretrain_negatives"] = self.pretrain_negatives
        return generators

    def set_stage(self, stage):
        """``"pretrain"``: bidirectional, four objectives; ``"finetune"``: SASRec."""
        check_choice("stage", stage, STAGES)
        self.stage = stage

    def pretrain_draws(self, length, width, total_rows, users=None):
        """The random draws of one pretraining batch of ``width`` positions, per row
        (``length`` ``[B]``):
        which items are masked, the segment's length and start, the donor row of the
        negative segment (a shift in ``1 .. total_rows - 1`` from the row's own index
        among the ``total_rows`` rows of the global batch) and where the donor's items
        start. Drawn in one fixed order from torch's generator. With
        ``pretrain_loss_type: BCE`` also ``negative``: for every position an item the
        row's user (``users`` ``[B]``) has not had in training, MIP's negative where
        the position is masked, from the sampler's own generator."""
        batch, device = length.size(0), length.device
        draws = {
            "mask": torch.rand(batch, width, device=device),
            "segment_length": torch.rand(batch, device=device),
            "segment_start": torch.rand(batch, device=device),
            "donor_shift": torch.randint(
                1, max(total_rows, 2), (batch,), device=device
            ),
            "donor_start": torch.rand(batch, device=device),
        }
        if self.pretrain_negatives is not None:
            per_position = users[:, None].expand(batch, width).reshape(-1)
            negative = self.pretrain_negatives.sample(per_position, 1)
            draws["negative"] = negative.view(batch, width)
        return draws

    def pretrain_batch(self, interaction):
        """Masks, segments and negative segments for every row, on tensors.

        The negative segment comes from another row of the global batch (every rank's
        rows, in a distributed run)."""
        sequence, length = append_item(
            interaction[self.ITEM_SEQ],
            interaction[self.ITEM_SEQ_LEN],
            interaction[self.POS_ITEM_ID],
        )
        batch, width = sequence.shape
        device = sequence.device
        rows = torch.arange(batch, device=device)
        positions = torch.arange(width, device=device)[None, :]
        real = positions < length[:, None]
        all_sequence, offset = gather_rows(sequence)
        all_length, _ = gather_rows(length)
        total = all_sequence.size(0)
        # BCE's MIP negatives are drawn per user
        sampled = self.pretrain_negatives is not None
        users = interaction[self.USER_ID] if sampled else None
        draws = self.pretrain_draws(length, width, total, users)

        item_mask = (draws["mask"] < self.mask_ratio) & real
        item_mask[rows, length - 1] = True  # the last item is always masked
        masked_sequence = sequence.masked_fill(item_mask, self.mask_token)

        # a segment of 1 .. n // 2 items at a random start, for rows with n >= 2
        has_segment = (length >= 2) & (total > 1)
        seg_len = 1 + (draws["segment_length"] * (length // 2)).long()
        seg_len = torch.minimum(seg_len, torch.clamp(length // 2, min=1))
        start = (draws["segment_start"] * (length - seg_len + 1)).long()
        in_segment = (positions >= start[:, None]) & (
            positions < (start + seg_len)[:, None]
        )
        in_segment &= has_segment[:, None]
        segment_context = sequence.masked_fill(in_segment, self.mask_token)
        outside = real & ~in_segment
        pos_segment = sequence.masked_fill(outside, self.mask_token)

        # the negative: as many items of another row, from a random start, wrapping
        donor = (rows + offset + draws["donor_shift"]) % total
        donor_len = all_length[donor]
        donor_start = (draws["donor_start"] * donor_len).long()
        shift = torch.clamp(positions - start[:, None], min=0)  # [B, L]
        donor_pos = (donor_start[:, None] + shift) % donor_len[:, None]
        donor_items = all_sequence[donor[:, None], donor_pos]
        neg_segment = torch.where(in_segment, donor_items, pos_segment)
        return PretrainBatch(
            sequence,
            length,
            masked_sequence,
            item_mask,
            segment_context,
            pos_segment,
            neg_segment,
            has_segment,
            draws.get("negative"),
        )

    def attribute_logits(self, output, linear):
        """Bilinear scores of ``output`` ([N, H]) against every attribute: [N, A]."""
        return linear(output) @ self.attribute_embedding.weight[1:].t()

    def attribute_targets(self, items):
        """[N, A] bool: which attributes each item has."""
        return attribute_targets(
            self.attribute_table, items, self.attributes.n_attributes
        )

    def attribute_loss(self, output, items, linear):
        """AAP's or MAP's loss: ``output`` ``[N, H]`` against the attributes of
        ``items`` ``[N]``, the positions whose item has one (InfoNCE or BCE)."""
        logits = self.attribute_logits(output, linear)
        positives = self.attribute_targets(items)
        if self.pretrain_loss_type == "BCE":
            return self.reduce(binary_cross_entropy(logits, positives))
        return self.reduce(info_nce(logits, positives, reduction="none"))

    def reduce(self, terms):
        """An objective's terms (per position or per row) as ``pretrain_reduction``
        says: their mean or their sum (the authors' code) over the global batch."""
        if self.pretrain_reduction == "sum":
            return global_sum(terms)
        return global_mean(terms)

    def pretrain_loss(self, interaction):
        """The four weighted objectives of one batch (:class:`S3RecPretrainLoss`):
        with ``pretrain_loss_type`` ``InfoNCE`` softmaxes over all items (MIP), all
        attributes (AAP, MAP) and the two segments (SP); with ``BCE`` the authors'
        forms: binary cross-entropy over all attributes, and for MIP (one sampled
        item) and SP (the other segment) :func:`sigmoid_margin`."""
        batch = self.pretrain_batch(interaction)
        n = batch.sequence.size(0)
        output = self.encode(
            torch.cat(
                [
                    batch.masked_sequence,
                    batch.segment_context,
                    batch.pos_segment,
                    batch.neg_segment,
                ]
            ),
            bidirectional=True,
        )  # [4B, L, H]
        item_output = output[:n]
        last = (batch.length - 1).repeat(3)
        summaries = self.gather_indexes(output[n:], last)  # [3B, H]
        context, pos_summary, neg_summary = summaries.split([n, n, n])

        bce = self.pretrain_loss_type == "BCE"
        # MIP: masked position vs its item; InfoNCE: every real item (not padding) a
        # candidate; BCE: against the position's sampled item
        masked_output = item_output[batch.item_mask]  # [M, H]
        masked_items = batch.sequence[batch.item_mask]  # [M], ids >= 1
        projected = self.mip_linear(masked_output)
        if bce:
            negatives = batch.negative[batch.item_mask]  # [M]
            pos_score = (projected * take_rows(self.item_weight, masked_items)).sum(-1)
            neg_score = (projected * take_rows(self.item_weight, negatives)).sum(-1)
            mip = self.reduce(sigmoid_margin(pos_score, neg_score))
        else:
            logits = projected @ self.item_weight[1:].t()
            mip = self.reduce(
                F.cross_entropy(logits, masked_items - 1, reduction="none")
            )

        # SP: context vs its segment, the other sequence's segment as negative
        projected = self.sp_linear(context)
        pos_score = (projected * pos_summary).sum(-1)
        neg_score = (projected * neg_summary).sum(-1)
        if bce:
            sp_loss = sigmoid_margin(pos_score, neg_score)
        else:
            sp_loss = F.cross_entropy(
                torch.stack([pos_score, neg_score], 1),
                torch.zeros_like(batch.length),
                reduction="none",
            )
        sp = self.reduce(sp_loss[batch.has_segment])  # the rows with a segment

        if self.has_attributes:
            unmasked = (batch.sequence > 0) & ~batch.item_mask
            aap = self.attribute_loss(
                item_output[unmasked], batch.sequence[unmasked], self.aap_linear
            )
            map_ = self.attribute_loss(masked_output, masked_items, self.map_linear)
        else:
            aap = map_ = mip.new_zeros(())
        return S3RecPretrainLoss(
            self.aap_weight * aap,
            self.mip_weight * mip,
            self.map_weight * map_,
            self.sp_weight * sp,
        )

    def calculate_loss(self, interaction):
        if self.stage == "pretrain":
            return self.pretrain_loss(interaction)
        return super().calculate_loss(interaction)
