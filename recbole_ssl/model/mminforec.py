"""MMInfoRec: memory-augmented multi-instance contrastive predictive coding."""

import math
from logging import getLogger
from typing import NamedTuple

import torch
import torch.nn.functional as F
from recbole.model.layers import TransformerEncoder
from torch import nn

from recbole_ssl.data.attributes import attribute_fields, load_item_attributes
from recbole_ssl.distributed import row_counts
from recbole_ssl.errors import ConfigError, check_choice, check_integer, check_number
from recbole_ssl.model.layers import first_token_output, take_rows
from recbole_ssl.model.losses import SIMILARITIES, cross_entropy, mince
from recbole_ssl.model.sasrec import SASRec

MEMORY_TYPES = ("residual", "no_residual", "none")
ITEM_ENCODINGS = ("att", "attcc")
PARAMETER_INITS = ("normal", "uniform")


class MMInfoRecLoss(NamedTuple):
    """MINCE and the optional next-item cross-entropy; RecBole's trainer sums them."""

    mince_loss: torch.Tensor  # Eq. 6 (or Eq. 5), mean over the prediction steps
    ce_loss: torch.Tensor  # ce_weight * CE over all items' latents (0 when off)


def future_targets(item_seq, lengths, target, step):
    """The item ``step`` positions after each position of the training sequence.

    The sequence of row ``b`` is ``item_seq[b, :lengths[b]]`` followed by
    ``target[b]``; position ``t`` gets the item at ``t + step``, 0 past the end.
    ``step == 1`` is the next item.  # [B, L]
    """
    batch, width = item_seq.shape
    rows = torch.arange(batch, device=item_seq.device)
    full = torch.cat([item_seq, item_seq.new_zeros(batch, step)], dim=1)
    full[rows, lengths] = target  # [B, L + step], the target after the last item
    return full[:, step : step + width]


class MMInfoRec(SASRec):
    r"""MMInfoRec: Memory Augmented Multi-Instance Contrastive Predictive Coding for
    Sequential Recommendation (Qiu et al., ICDM 2021, arXiv:2109.00368).

    * ``g_enc`` (Eq. 1): each item is encoded with its attributes by a small
      Transformer over ``[item; attribute_1; ...]`` (bidirectional, padding masked);
      the output at the item's token is its latent ``z``. Its dropout makes several
      passes over the same item differ: the semantic positives. Items without
      attributes are encoded from their id alone.
    * ``g_ta`` (Eq. 2): SASRec's causal Transformer with learned positions over
      ``z_1 .. z_t`` gives ``c_t`` (dropout on its input and inside).
    * ``g_m`` (Eq. 3): ``z_hat = softmax(MLP(c_t)) M + c_t`` over ``memory_slots``
      slots (``memory_type``: ``residual``, ``no_residual`` without ``+ c_t``, or
      ``none``: ``z_hat = c_t``), the ablation of the paper's Fig. 3.
    * ``g_ap`` (Eq. 4): a GRU cell rolls the context forward for ``pred_step`` steps,
      ``c_(t+1) = GRU(z_hat_(t+1), c_t)``.
    * MINCE (Eq. 6, :func:`recbole_ssl.model.losses.mince`) at every real position and
      step: the positives are ``positive_copies`` (q) dropout passes of the ground
      truth item and of its other occurrences in the batch, the negatives every other
      ground truth's copies in the batch (general: other sequences; temporal, with
      ``train_mode: sequence`` only: the same sequence). ``multi_instance: False`` is
      the vanilla NCE of Eq. 5.
    * Recommendation: ``z_hat_(t+1)`` scored against every item's ``z`` with the
      training similarity, ``z`` computed with
      dropout off once per evaluation (cached until the model trains again).

    NOTE:
        Where this differs from the paper or from the authors' code
        (github.com/RuihongQiu/MMInfoRec: ``model.py``, ``trainer.py``, ``*.sh``):

        * Scores are dot products ``z_hat . z`` divided by ``mince_temperature`` (8 =
          sqrt(hidden_size), the scaled dot product), in training and in
          recommendation. Eqs. 5-6 divide dot products by tau (chosen from 0.1 to 3,
          Sec. IV-A5); the authors' ``MILNCE`` multiplies them by tau instead, 0.3 on
          Beauty (``beauty.sh``), i.e. temperature 3.33; neither uses cosines. Here
          both vectors leave LayerNorms (length about ``sqrt(D) = 8``), so at
          temperature 3.33 the first MINCE losses on Beauty are 9.6, far above the
          uniform level ``ln P`` = 7.3, and within 60 batches every item's ``z``
          collapsed onto one direction (mean pairwise cosine 0.986); full runs sat at
          the uniform loss (validation NDCG@20 0.0003-0.0006). At temperature 10 the
          first 60 batches keep the items apart (cosine 0.093); at 8, with the CE,
          full runs learn. ``mince_similarity: cos`` scores cosines
          instead (with ``mince_temperature`` 0.3, ``ce_temperature`` 0.1); on Beauty
          at CE weight 10 it validated at best NDCG@20 0.0762 and 0.0809 (seeds 2020,
          cut off after 18 epochs, and 2021), the dot product at 0.0800 and 0.0811,
          and tested 6.8% below it on NDCG@20 (p 0.26, not significant at two
          seeds); its seed-2020 checkpoints ranked popular items higher, which cost
          them on the test split (``results/amazon-beauty.md``).
        * Recommendation ranks ``z_hat_(t+1) = g_m(c_t)``, not ``c_t`` as Sec. III-B6
          says: the authors' code ranks the memory read of the last context
          (``finetune(..., 'test')`` returns ``mem_read``, ``predict_full_att``), the
          vector MINCE trains. With ``memory_type: none`` the two are the same.
        * MINCE's instances at step k are the ground truths of that step's scored
          positions (q copies each), not every item of the batch. ``sequence`` rows:
          every item of a row but its first; general negatives are the other rows'
          ground truths, temporal negatives the row's own other ones (earlier and
          later). ``prefix`` rows score their last position only, so the instances are
          the batch's targets: general negatives only, no temporal negatives (a row's
          history is never a candidate; Sec. III-C2b needs ``sequence``). The
          authors score every step against every item of the batch's sequences,
          first items included (``sim_score`` over all ``input_ids``).
        * Each occurrence of an item in the batch gets its own q dropout passes, so
          repeats give distinct positives; negatives are counted per occurrence, as in
          the authors' code (one column per item of the batch), not per unique item
          (the paper counts unique items, ``|N_i| = D - 1``). The q copies are fresh
          ``g_enc`` passes; the authors' first copy is the pass that also fed ``g_ta``.
          ``instance_dropout_prob`` (0 here; the authors' ``loss_fuse_dropout_prob``,
          0.5 in their scripts and the preset) is one more dropout on every copy, in
          MINCE only.
        * ``multi_instance: False`` (Eq. 5): the positive is the prediction's own
          instance; other instances of the same item are left out of the denominator
          (Eq. 5's negatives are "other items"). The authors' code trains MINCE only.
        * ``item_encoding: att`` (the default) is the paper's self-attention of the
          item over its attributes (Sec. IV-A5, the authors' ``--enc att``). The
          authors' default, which their scripts keep, is ``attcc``:
          ``z = [x; g_enc(x, a)]`` (the id embedding beside g_enc's output, 2 x
          ``hidden_size``), so ``g_ta`` (its feed-forward ``inner_size`` doubled too),
          the memory and the GRU run at twice the hidden size; the preset uses it.
        * ``g_enc`` and ``g_ta`` are RecBole's Transformer layers (feed-forward
          ``inner_size`` 256, gelu, LayerNorm and dropout on the input), initialised
          normal(0, 0.02); the authors use ``nn.TransformerEncoderLayer`` (feed-forward
          of the hidden size, ReLU, no input LayerNorm) and draw every parameter,
          LayerNorm weights included, uniformly from +-1/sqrt(hidden_size):
          ``parameter_init: uniform`` does that here (the preset, with ``inner_size``
          64 and ``hidden_act: relu``). It is what keeps the authors' logits small: a
          LayerNorm output scaled by weights of about 0.07 is a vector of length
          about 0.6, not 8, so their tau 0.3 starts near the uniform loss. In
          training one dropout differs: ``nn.TransformerEncoderLayer`` drops the
          feed-forward's hidden units between its two Linears (p 0.5 in the
          authors' scripts), RecBole's feed-forward does not
          (``feed_forward_dropout: True`` adds it, at ``hidden_dropout_prob`` in
          ``g_ta`` and ``attribute_dropout_prob`` in ``g_enc``; the preset sets it).
          With dropout off and the authors' weights, the two compute the same to
          float rounding (``benchmarks/mminforec_same_batch.py``, with ``input_norm:
          False`` and ``memory_mlp_layers: 1``).
        * ``g_enc`` and ``g_ta`` start with a LayerNorm of their input (then
          dropout: ``attribute_dropout_prob``, ``hidden_dropout_prob``), as RecBole's
          SASRec; the authors' have none (``g_ta``'s input is ``dropout(z +
          position)``, ``g_enc``'s the raw tokens). ``input_norm: False`` drops both
          LayerNorms and ``g_enc``'s input dropout, as theirs (the preset). Without
          them, on a CPU, weights shrink into subnormal floats and epochs slow
          several-fold (60 to 430 s on Beauty), as in the authors' code:
          ``flush_denormal: True`` (the preset sets it).
        * ``g_enc`` has its own dropout, ``attribute_dropout_prob`` (0.1). The paper
          gives 0.5 for ``g_ta`` only; the authors' ``attention_probs_dropout_prob``
          (0.5 in their scripts) is the dropout of their ``g_enc`` layers as well. Its
          LayerNorm and layers are separate from ``g_ta``'s. With 0.5 the Beauty run
          (cosine, 0.3) peaked at validation NDCG@20 0.0279 after 30 epochs; with 0.1
          it was 0.0280 after 3 and 0.0415 after 21 (one seed each).
        * The memory's MLP is Linear-ReLU-Linear (the paper says MLP only); the
          authors' is one Linear (``mb_fc``): ``memory_mlp_layers: 1`` (the preset).
          Their dropout on ``z_hat`` (``mb_dp`` 0.2) is ``memory_dropout_prob`` here
          (0 by default, 0.2 in the preset).
        * ``g_ap`` is a GRU cell started from the context: ``c_(t+1) =
          GRU(z_hat_(t+1), c_t)``. Eq. 4 writes ``g_ap(z_hat_(t+1))`` alone, and the
          authors' GRU starts from a zero state (``init_hidden``) with ``z_hat`` as
          input; from the second roll-out on both carry the GRU's own state.
        * With ``pred_step > 1`` the loss is the mean over the steps of each step's
          mean. The authors take one mean over all rows of all steps, counting 0 for
          the rows a later step runs past the end of, so later steps weigh less there.
          The two agree for ``pred_step`` 1.
        * ``ce_weight`` (10 by default; 0 is the paper's MINCE alone) adds a next-item
          cross-entropy over all items' latents, ``sim(z_hat, z) / ce_temperature``
          (``loss_type: BCE`` or ``BPR``: the same scores against sampled negatives),
          with one dropout pass over the whole item table per batch. Neither the paper
          nor the authors' trainer has it (they train MINCE alone). MINCE ranks a
          prediction only against the batch's ground truths (a popularity-biased
          sample); this is the loss SASRec and the other models of the plugin train
          with. It is a separate part of the loss (``MMInfoRecLoss``) so both are logged.
          On Beauty MINCE alone reached test NDCG@10 0.0171 and 0.0167 with seeds
          2020 and 2021 (cosine, ``g_enc`` dropout 0.5; test NDCG@20 65% below the
          defaults', p 0.00021); with the CE at weight 1 (cosine, temperature 0.1)
          0.0493 and 0.0512 (seeds 2020 and 2021; test NDCG@20 7.7% below SASRec's,
          p 0.13), at weight 10 0.0508 and 0.0541 (seeds 2020 and 2021; test NDCG@20
          5.1% below SASRec's, p 0.33); with scaled dot products at weight 1 0.0537,
          0.0538 and 0.0530 (seeds 2020 to 2022: 5.6% below SASRec, p 0.0004, and
          below it on all six metrics), and at weight 10 (the defaults) validation NDCG@20
          0.0800 with seed 2020, SASRec's 0.0794 with that seed; over the seeds the
          defaults' test NDCG@20 is 1.9% above SASRec's, p 0.043
          (``results/amazon-beauty.md``).
        * Training rows follow ``train_mode``; ``pred_step > 1`` needs ``sequence``
          (prefix rows do not hold the items after their target). The authors always
          score every position of a user's training sequence (``sequence``).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.copies = config["positive_copies"]
        self.pred_step = config["pred_step"]
        self.memory_type = config["memory_type"]
        self.temperature = config["mince_temperature"]
        self.multi_instance = config["multi_instance"]
        self.similarity = config["mince_similarity"]
        self.ce_weight = config["ce_weight"]
        self.ce_temperature = config["ce_temperature"]
        self.item_encoding = config["item_encoding"]
        # attcc: z = [x; g_enc(x, a)], so g_ta, the memory and g_ap run at twice the width
        width = self.hidden_size * (2 if self.item_encoding == "attcc" else 1)
        self.latent_size = width
        if width != self.hidden_size:  # SASRec's layers, rebuilt at the latent width
            self.position_embedding = nn.Embedding(self.max_seq_length, width)
            self.trm_encoder = TransformerEncoder(
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                hidden_size=width,
                inner_size=self.inner_size * width // self.hidden_size,
                hidden_dropout_prob=self.hidden_dropout_prob,
                attn_dropout_prob=self.attn_dropout_prob,
                hidden_act=self.hidden_act,
                layer_norm_eps=self.layer_norm_eps,
            )
            self.LayerNorm = nn.LayerNorm(width, eps=self.layer_norm_eps)
        self.attributes = load_item_attributes(
            dataset, config["item_attribute"], getLogger(), "MMInfoRec"
        )
        if self.attributes is not None:
            self.register_buffer("attribute_table", self.attributes.table, False)
            self.attribute_embedding = nn.Embedding(
                self.attributes.n_attributes + 1, self.hidden_size, padding_idx=0
            )
        self.attribute_encoder = TransformerEncoder(
            n_layers=config["attribute_layers"],
            n_heads=self.n_heads,
            hidden_size=self.hidden_size,
            inner_size=self.inner_size,
            hidden_dropout_prob=config["attribute_dropout_prob"],
            attn_dropout_prob=config["attribute_dropout_prob"],
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
        )
        if config["input_norm"]:  # LayerNorm and dropout on g_enc's input tokens
            self.attribute_norm = nn.LayerNorm(
                self.hidden_size, eps=self.layer_norm_eps
            )
            self.attribute_dropout = nn.Dropout(config["attribute_dropout_prob"])
        else:  # the authors' g_enc: the raw tokens, dropout inside its layers only
            self.attribute_norm = self.attribute_dropout = nn.Identity()
            self.LayerNorm = nn.Identity()  # and g_ta's input: dropout(z + position)
        if config["feed_forward_dropout"]:  # nn.TransformerEncoderLayer's, theirs
            for encoder, p in (
                (self.trm_encoder, self.hidden_dropout_prob),
                (self.attribute_encoder, config["attribute_dropout_prob"]),
            ):
                for layer in encoder.layer:
                    inner = layer.feed_forward
                    inner.dense_2 = nn.Sequential(nn.Dropout(p), inner.dense_2)
        self.instance_dropout = nn.Dropout(config["instance_dropout_prob"])
        self.memory = nn.Parameter(torch.empty(config["memory_slots"], width))
        if config["memory_mlp_layers"] == 2:
            self.memory_mlp = nn.Sequential(
                nn.Linear(width, width),
                nn.ReLU(),
                nn.Linear(width, config["memory_slots"]),
            )
        else:  # the authors' mb_fc
            self.memory_mlp = nn.Sequential(nn.Linear(width, config["memory_slots"]))
        self.memory_dropout = nn.Dropout(config["memory_dropout_prob"])
        self.predictor = nn.GRUCell(width, width)
        self.apply(self._init_weights)
        nn.init.normal_(self.memory, std=self.initializer_range)
        if config["parameter_init"] == "uniform":  # the authors' reset_parameters
            bound = 1.0 / math.sqrt(self.hidden_size)
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -bound, bound)
        self._item_cache = None

    @classmethod
    def check_config(cls, config):
        """Clear errors for bad MMInfoRec settings, before any data is loaded."""
        check_integer("positive_copies", config["positive_copies"], 1)
        check_integer("pred_step", config["pred_step"], 1)
        check_integer("memory_slots", config["memory_slots"], 1)
        check_integer("attribute_layers", config["attribute_layers"], 1)
        check_number("attribute_dropout_prob", config["attribute_dropout_prob"], 0, 1)
        check_number("instance_dropout_prob", config["instance_dropout_prob"], 0, 1)
        check_number("memory_dropout_prob", config["memory_dropout_prob"], 0, 1)
        check_choice("item_encoding", config["item_encoding"], ITEM_ENCODINGS)
        check_choice("parameter_init", config["parameter_init"], PARAMETER_INITS)
        check_choice("input_norm", config["input_norm"], (True, False))
        check_choice("memory_mlp_layers", config["memory_mlp_layers"], (1, 2))
        check_choice(
            "feed_forward_dropout", config["feed_forward_dropout"], (True, False)
        )
        check_number("mince_temperature", config["mince_temperature"], 0, low_open=True)
        check_number("ce_weight", config["ce_weight"], 0)
        check_number("ce_temperature", config["ce_temperature"], 0, low_open=True)
        check_choice("memory_type", config["memory_type"], MEMORY_TYPES)
        check_choice("multi_instance", config["multi_instance"], (True, False))
        check_choice("mince_similarity", config["mince_similarity"], SIMILARITIES)
        attribute_fields(config["item_attribute"])
        if config["pred_step"] > 1 and config["train_mode"] != "sequence":
            raise ConfigError(
                "pred_step > 1 needs train_mode 'sequence' (prefix rows do not hold "
                f"the items after their target), got {config['train_mode']!r}"
            )

    def train(self, mode=True):
        self._item_cache = None  # parameters may change: encode the items again
        return super().train(mode)

    # ------------------------------------------------------------------ modules

    def encode_items(self, items):
        """``g_enc``: the latent ``z`` of each item id in ``items`` (any shape).  # [..., D]

        In training mode every call draws new dropout masks.
        """
        flat = items.reshape(-1)
        tokens = self.item_embedding(flat)[:, None]  # [N, 1, D]
        present = torch.ones(flat.size(0), 1, dtype=torch.bool, device=flat.device)
        if self.attributes is not None:
            ids = self.attribute_table[flat]  # [N, M]
            tokens = torch.cat([tokens, self.attribute_embedding(ids)], dim=1)
            present = torch.cat([present, ids > 0], dim=1)
        hidden = self.attribute_dropout(self.attribute_norm(tokens))
        mask = torch.where(present[:, None, None, :], 0.0, -10000.0)
        *layers, last = self.attribute_encoder.layer
        for layer in layers:
            hidden = layer(hidden, mask)
        z = first_token_output(last, hidden, mask)  # only the item token is read
        if self.item_encoding == "attcc":  # the id embedding beside g_enc's output
            z = torch.cat([tokens[:, 0], z], dim=-1)
        return z.reshape(*items.shape, z.size(-1))  # items may be empty

    def read_memory(self, context):
        """``g_m`` (Eq. 3) per ``memory_type``, then ``memory_dropout_prob`` (the
        authors' ``mb_dp``; not with ``none``, which has no memory)."""
        if self.memory_type == "none":
            return context
        read = torch.softmax(self.memory_mlp(context), dim=-1) @ self.memory
        return self.memory_dropout(
            read + context if self.memory_type == "residual" else read
        )

    def contexts(self, item_seq):
        """``c_t`` at every position (``g_ta`` over ``g_enc`` of the items).  # [B, L, D]

        In evaluation ``g_enc`` has no dropout, so the items' ``z`` are read from the
        table the scoring encodes once, not encoded again at every position."""
        if not self.training:
            return self.encode(item_seq, item_emb=self.item_table()[item_seq])
        real = item_seq > 0
        z = torch.zeros(*item_seq.shape, self.latent_size, device=item_seq.device)
        z[real] = self.encode_items(item_seq[real])
        return self.encode(item_seq, item_emb=z)

    # ------------------------------------------------------------------ training

    loss_parts = MMInfoRecLoss
    loss_types = ("CE", "BCE", "BPR")  # its CE term scores g_enc latents: no SSM yet

    def next_item_ce(self, predicted, truth, latents):
        """Cross-entropy of ``truth`` among all items, scores ``sim(z_hat, z) /
        ce_temperature`` with ``latents`` the items' ``z`` of this batch."""
        if self.similarity == "cos":
            predicted = F.normalize(predicted, dim=-1)
        # the real items only (the padding is no candidate): ids shift down by one
        logits = (predicted / self.ce_temperature) @ latents[1:].t()  # [P, n_items - 1]
        return cross_entropy(logits, truth - 1)

    def next_item_sampled(self, interaction, targets, predicted, latents):
        """``next_item_ce`` with ``loss_type`` BCE or BPR: the same scores, for each
        target and its sampled negatives."""
        predicted = predicted[targets > 0]  # [P, D]
        if self.similarity == "cos":
            predicted = F.normalize(predicted, dim=-1)
        return self.sampled_next_item_loss(
            interaction,
            targets,
            lambda items: torch.einsum(
                "pd,pmd->pm", predicted, take_rows(latents, items)
            )
            / self.ce_temperature,
        )

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN]
        context = self.contexts(item_seq)  # [B, L, D]
        predicted = self.read_memory(context)  # z_hat at every position
        # one dropout pass over every item per batch, shared by the steps
        latents = self.item_latents() if self.ce_weight > 0 else None
        losses, ce_losses = [], []
        for step in range(1, self.pred_step + 1):
            if step == 1:
                targets = self.next_item_targets(interaction)
            else:  # g_ap: roll the context forward with the last prediction
                context = self.predictor(
                    predicted.flatten(0, 1), context.flatten(0, 1)
                ).view_as(context)
                predicted = self.read_memory(context)
                targets = future_targets(
                    item_seq, lengths, interaction[self.POS_ITEM_ID], step
                )
            scored = targets > 0
            if sum(row_counts(int(scored.sum()))) == 0:  # on no rank: every rank stops
                break
            truth = targets[scored]  # [P]
            copies = self.instance_dropout(  # the authors' loss_fuse_dropout_prob
                self.encode_items(truth[:, None].expand(-1, self.copies))
            )
            losses.append(
                mince(
                    predicted[scored],
                    truth,
                    copies,
                    truth,
                    self.temperature,
                    multi=self.multi_instance,
                    similarity=self.similarity,
                )
            )
            if latents is not None and self.loss_type != "CE":
                ce_losses.append(
                    self.next_item_sampled(interaction, targets, predicted, latents)
                )
            elif latents is not None:
                ce_losses.append(self.next_item_ce(predicted[scored], truth, latents))
        if not losses:  # no position has a target
            zero = predicted.sum() * 0.0
            return MMInfoRecLoss(zero, zero)
        mince_loss = torch.stack(losses).mean()
        ce_loss = (
            torch.stack(ce_losses).mean() if ce_losses else torch.zeros_like(mince_loss)
        )
        return MMInfoRecLoss(mince_loss, self.ce_weight * ce_loss)

    # ------------------------------------------------------------------ prediction

    def item_table(self):
        """``z`` of every item (row 0, the padding, zero). In training a fresh dropout
        pass; in evaluation computed once and kept until the model trains again.
        # [n_items, D]"""
        if self._item_cache is None or self.training:
            items = torch.arange(
                1, self.n_items, device=self.item_embedding.weight.device
            )
            parts = [self.encode_items(chunk) for chunk in items.split(4096)]
            table = torch.cat([torch.zeros_like(parts[0][:1]), *parts])
            if self.training:
                return table
            self._item_cache = table
        return self._item_cache

    def item_latents(self):
        """The items' ``z`` as scored: ``item_table()``, unit length with
        ``mince_similarity: cos`` (the padding row stays 0).  # [n_items, D]"""
        table = self.item_table()
        return F.normalize(table, dim=-1) if self.similarity == "cos" else table

    def forward(self, item_seq, item_seq_len):
        context = self.gather_indexes(self.contexts(item_seq), item_seq_len - 1)
        predicted = self.read_memory(context)  # z_hat_(t+1)  # [B, D]
        return F.normalize(predicted, dim=-1) if self.similarity == "cos" else predicted

    def full_sort_predict(self, interaction):
        predicted = self.forward(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        )
        return predicted @ self.item_latents().t()  # [B, n_items]

    def predict(self, interaction):
        predicted = self.forward(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        )
        return (predicted * self.item_latents()[interaction[self.ITEM_ID]]).sum(-1)
