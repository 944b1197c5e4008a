"""DSSRec: seq2seq self-supervision in the latent space of disentangled intentions."""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ssl.distributed import gather_rows, global_average, global_mean
from recbole_ssl.errors import ConfigError, check_choice, check_integer, check_number
from recbole_ssl.model.layers import take_rows
from recbole_ssl.model.losses import cross_entropy
from recbole_ssl.model.sasrec import SASRec

S2I_LOSSES = ("CE", "in_batch")


class DSSRecLoss(NamedTuple):
    """The two parts of Eq. 7; RecBole's trainer sums them and logs each."""

    s2i_loss: torch.Tensor  # sequence-to-item (Eq. 5-6)
    s2s_loss: torch.Tensor  # s2s_weight * sequence-to-sequence (Eq. 3-4)


class IntentionDisentanglement(nn.Module):
    r"""The intention-disentanglement layer (DSSRec Eqs. 8-13).

    From the encoder outputs ``z`` of a right-padded sequence it computes ``K`` output
    vectors for every prefix: intention clustering against ``K`` prototypes
    (Eq. 8, LayerNorm'd scores scaled by ``1/sqrt(D)``), intention weighting with its
    own position embeddings, key/query and the residual ReLU map (Eqs. 9-12), and
    the aggregation into ``K`` outputs with a per-output bias and a final LayerNorm
    (Eq. 13). There are two bias sets: ``input`` for a sequence whose intentions
    predict (``x_{1:t}``), ``label`` for a sequence being predicted (the reversed
    future ``x_{T:t+1}``).
    """

    def __init__(self, hidden_size, n_intents, max_length, layer_norm_eps):
        super().__init__()
        self.hidden_size = hidden_size
        self.scale = 1.0 / math.sqrt(hidden_size)
        self.prototypes = nn.Parameter(torch.randn(n_intents, hidden_size) * self.scale)
        self.norm_intention = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # LN1
        self.norm_prototype = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # LN2
        self.position = nn.Embedding(max_length, hidden_size)  # alpha_i
        self.norm_key = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # LN3
        self.key_map = nn.Linear(hidden_size, hidden_size)  # W, b
        self.query_bias = nn.Parameter(torch.zeros(hidden_size))  # b'
        self.norm_query = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # LN4
        self.biases = nn.ParameterDict(
            {
                side: nn.Parameter(torch.randn(n_intents, hidden_size) * self.scale)
                for side in ("input", "label")
            }
        )  # beta_k, one set per side
        self.norm_output = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # LN5

    def forward(self, z, lengths, side, every_prefix=False):
        """``K`` outputs of each sequence, or of each of its prefixes.

        Args:
            z: ``[B, L, D]`` encoder outputs of right-padded sequences.
            lengths: ``[B]`` real lengths (>= 1).
            side: ``"input"`` or ``"label"``, the bias set (Eq. 13).
            every_prefix: also the outputs of ``x_{1:t}`` for every ``t``.

        Returns:
            ``[B, K, D]``, or ``[B, L, K, D]`` with ``every_prefix`` (position
            ``t - 1`` holds the prefix of length ``t``; padding positions are junk).
        """
        width = z.size(1)
        positions = torch.arange(width, device=z.device)
        real = positions[None, :] < lengths[:, None]  # [B, L]
        # Eq. 8: p(k | i), cosine-like scores to the prototypes
        clusters = torch.softmax(
            self.norm_intention(z)
            @ self.norm_prototype(self.prototypes).t()
            * self.scale,
            dim=-1,
        )  # [B, L, K]
        # Eqs. 10-12: keys at every position, the query at the (prefix's) last one
        alpha = self.position(positions)[None]  # [1, L, D]
        key = self.norm_key(alpha + z)
        key = key + F.relu(self.key_map(key))
        query = self.norm_query(alpha + z + self.query_bias)  # [B, L, D]
        if every_prefix:
            visible = real[:, None, :] & (positions[None, :, None] >= positions)
        else:
            last = (lengths - 1).clamp(min=0)
            query = query[torch.arange(z.size(0), device=z.device), last][:, None]
            visible = real[:, None, :]  # [B, 1, L]
        scores = (query @ key.transpose(1, 2)) * self.scale  # [B, Q, L]
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        weights = weights.nan_to_num(0.0)  # a padding query sees nothing
        # Eq. 13: sum_i p(k|i) p_i z_i, plus the side's bias, then LN5
        mixed = torch.einsum("bqi,bik,bid->bqkd", weights, clusters, z)
        outputs = self.norm_output(self.biases[side] + mixed)  # [B, Q, K, D]
        return outputs if every_prefix else outputs[:, 0]


def confidence_mask(losses, ratio):
    """Keep exactly the ``ceil(ratio * N)`` smallest of ``losses`` (``[N]``), DSSRec
    Eq. 4, with ``N`` the real number of terms (a last, partial batch included)."""
    n_keep = math.ceil(ratio * losses.numel() - 1e-9)
    keep = torch.zeros_like(losses, dtype=torch.bool)
    if n_keep > 0:
        keep[torch.topk(losses.detach(), n_keep, largest=False).indices] = True
    return keep


class BestPartScores(torch.autograd.Function):
    """``max_k parts[:, k] . weight_j`` for every item ``j``: ``[N, M]`` from ``parts``
    ``[N, K, D]`` and ``weight`` ``[M, D]``; each score's gradient goes to the part
    that won it, the first of equal ones, as ``max(dim)`` routes it.

    ``max(dim).values`` over the ``[N, K, M]`` products spent more time finding the
    indices along the middle axis than in the products, and its backward scatters
    into a zeroed ``[N, K, M]``. Here the forward keeps only the maximum (``amax``);
    the backward marks the winners in the products' own memory (equal to the
    maximum; a tie, rare, goes to its first part) and multiplies them by the
    gradient. Where the time goes: ``benchmarks/profile_batches.py --model DSSRec``;
    the same losses, gradients and scores as before: tests/test_loss_reference.py.
    """

    @staticmethod
    def forward(ctx, parts, weight):
        n, k, dim = parts.shape
        scores = (parts.reshape(n * k, dim) @ weight.t()).view(n, k, weight.size(0))
        best = scores.amax(1)
        ctx.save_for_backward(parts, weight, scores, best)
        ctx.spent = False
        return best

    @staticmethod
    def backward(ctx, grad):
        if ctx.spent:
            raise RuntimeError(
                "DSSRec's BestPartScores reuses its saved products in its backward: "
                "one backward per forward (retain_graph is not supported)"
            )
        ctx.spent = True
        parts, weight, scores, best = ctx.saved_tensors
        n, k, dim = parts.shape
        won = scores.eq_(best[:, None])  # 1 where a part's score is the maximum
        if k > 1:
            tied = won.sum(1) > 1  # [N, M]
            if tied.any():  # the first of the tied parts takes the gradient
                rows, items = tied.nonzero(as_tuple=True)
                ties = won[rows, :, items]  # [T, K]
                won[rows, :, items] = ties * (ties.cumsum(1) == 1)
        share = won.mul_(grad[:, None]).view(n * k, weight.size(0))  # n may be 0
        grad_parts = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_parts = (share @ weight).view(n, k, dim)
        if ctx.needs_input_grad[1]:
            grad_weight = share.t() @ parts.reshape(n * k, dim)
        return grad_parts, grad_weight


class DSSRec(SASRec):
    r"""DSSRec: Disentangled Self-Supervision in Sequential Recommenders (Ma et al.,
    KDD 2020).

    A single-head SASRec encoder followed by an intention-disentanglement layer
    (:class:`IntentionDisentanglement`) that gives ``K`` intention vectors per
    sequence, trained on ``L = L_s2i + s2s_weight * L_s2s`` (Eq. 7):

    * **seq2item** (Eq. 6): an item's score is the max over ``k`` of its dot product
      with the ``K`` outputs, at every position of the user's
      training sequence (the plugin's ``sequence`` regime). ``s2i_loss: CE`` (default)
      normalises over all items; ``in_batch`` over the batch's targets and all ``K``
      parts, as Eq. 6; ``loss_type: BCE`` (or ``BPR``) scores the target against
      ``train_neg_num`` sampled negatives instead.
    * **seq2seq** (Eq. 3): per user and epoch a random cut ``t``; the ``K`` outputs of
      ``x_{1:t}`` (input biases) are matched with those of the reversed future
      ``x_{T:t+1}`` (label biases), a softmax over the batch's ``|B| * K`` label
      vectors, scaled by ``1/sqrt(D)``. Confidence selection (Eq. 4) keeps the
      ``ceil(lambda * |B| * K)`` smallest terms, ``|B|`` the real batch size.
      ``s2s_lambda: 0`` is the plain seq2item model.

    Prediction scores every item by the max over ``k``, as seq2item.

    NOTE (choices the paper leaves open or where this differs):
        * Training rows are ``train_mode: sequence`` only (one row per user, the
          training items only: the future never holds a validation or test item);
          the cut ``t`` is drawn uniformly from ``1..n`` per row, so each user gives
          one seq2seq sample per epoch, while seq2item scores every position. Prefix
          rows would need each row's future, which they do not hold.
        * CE over all items is the default seq2item loss: it is the plugin's loss for
          every model (the SASRec it must beat uses it), and the in-batch softmax of
          Eq. 6 ranks the target only against about 256 of the 12,101 items.
        * Seq2item scores are not divided by ``sqrt(D)`` by default (``s2i_scale:
          True`` restores Eq. 6's scaling). With CE over 12,101 items the scaled scores
          start about 8 times smaller (item embeddings are initialised with std 0.02),
          and on Beauty the seq2item loss stayed at its uniform level (9.37-9.39 per
          batch, ln 12,101 = 9.40) for three epochs, validation NDCG@20 0.0015 (one
          seed). Seq2seq keeps the scaling: it compares two LayerNorm'd vectors, the
          case the paper motivates it with.
        * ``s2s_weight`` is 0.01 by default, not Eq. 7's 1. On Beauty's first epoch
          (``benchmarks/dssrec_pace.py``, same batches and initialisation) the
          seq2item loss fell to 8.865 without seq2seq (SASRec: 8.869), 8.903 at weight
          0.1, 8.974 at 0.3 and 9.102 at 1, while the seq2seq loss itself did not fall
          further at the larger weight (10.69 unweighted at 1, 10.53 at 0.1).
          Validation NDCG@20 after epoch 3 was 0.0105 at weight 1, 0.0237 at 0.1.
          Full Beauty runs (seed 2020, one each), best validation NDCG@20: 0.0763 at
          weight 0.1, 0.0808 at 0.1 with ``s2s_lambda`` 0.1, 0.0811 at 0.01 (test
          0.0665; seq2item alone 0.0809 / 0.0671, SASRec 0.0794 / 0.0649). Over
          seeds 2020 and 2021 seq2item alone and ``s2s_lambda`` 0.1 tie the defaults
          (test NDCG@20 +0.6%, p 0.69; -0.6%, p 0.66), and the defaults tie SASRec on
          test NDCG@20 (+2.1%, p 0.16) and lead it on HR@20 (+7.7%, p 0.0011); weight
          0.1 tests 8.3% below them on NDCG@20 (p 0.042, seeds 2020 and 2021;
          ``results/amazon-beauty.md``, Variants).
        * Losses are means over the scored positions (seq2item) and the sum of kept
          seq2seq terms divided by ``|B|``; the paper sums both over the batch.
        * Layers, dropout, ``K`` and ``lambda`` are those of ``DSSRec.yaml``; the
          paper tuned them by random search and did not publish the values.
        * The paper's authors published no code. The DSSRec figures of the ICLRec
          paper (Table 1, the "paper" column of this plugin's results) come from a
          third-party implementation (github.com/abinashsinha330/DSSRec, ICLRec's
          footnote 8), adapted: as published it reads MOOCCube's files and fails on
          Beauty. It trains in two stages: Eq. 7 as pretraining (300 epochs by
          default, each window of up to 50 items cut once per epoch, no validation),
          then a SASRec fine-tuned from a pretraining checkpoint (epoch 30 by default)
          with BCE and one sampled negative per position on the Transformer's outputs,
          which by default (its ``loss_type DSS``, the only mode whose full ranking
          runs) leaves the disentangled layer out of fine-tuning and ranking. This
          model trains Eq. 7 end to end and ranks by the best of the ``K`` parts, as
          the paper describes; its preset is not that pipeline.
    """

    loss_parts = DSSRecLoss
    loss_types = ("CE", "BCE", "BPR")  # seq2item scores by the best part: no SSM yet

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.n_intents = config["n_intents"]
        self.s2s_lambda = config["s2s_lambda"]
        self.s2s_weight = config["s2s_weight"]
        self.s2i_loss = config["s2i_loss"]
        self.scale = 1.0 / math.sqrt(self.hidden_size)
        self.s2i_scale = self.scale if config["s2i_scale"] else 1.0
        self.disentangle = IntentionDisentanglement(
            self.hidden_size,
            self.n_intents,
            self.max_seq_length,
            config["layer_norm_eps"],
        )
        self.disentangle.position.apply(self._init_weights)
        self.disentangle.key_map.apply(self._init_weights)

    @classmethod
    def check_config(cls, config):
        """Clear errors for bad DSSRec settings, before any data is loaded."""
        check_integer("n_intents", config["n_intents"], 1)
        check_number("s2s_lambda", config["s2s_lambda"], 0, 1)
        check_number("s2s_weight", config["s2s_weight"], 0)
        check_choice("s2i_loss", config["s2i_loss"], S2I_LOSSES)
        check_choice("s2i_scale", config["s2i_scale"], (True, False))
        if config["train_mode"] != "sequence":
            raise ConfigError(
                f"DSSRec needs train_mode 'sequence' (one row per user holding its "
                f"future), got {config['train_mode']!r}"
            )
        if config["loss_type"] != "CE" and config["s2i_loss"] != "CE":
            raise ConfigError(
                f"s2i_loss {config['s2i_loss']!r} is a seq2item loss of its own; "
                f"with loss_type {config['loss_type']!r} (sampled negatives) leave "
                "s2i_loss at 'CE'"
            )

    def intents(self, item_seq, lengths, side="input", every_prefix=False):
        """The ``K`` intention vectors of each sequence (or of each prefix)."""
        return self.disentangle(self.encode(item_seq), lengths, side, every_prefix)

    def item_scores(self, parts):
        """``max_k parts_k . h_j`` for every item (``/ sqrt(D)`` with ``s2i_scale``):
        ``[N, n_items]``, ``parts`` being ``[N, K, D]`` (see :class:`BestPartScores`).
        """
        if torch.is_grad_enabled():
            best = BestPartScores.apply(parts, self.item_weight)
        else:  # evaluation: a running maximum over the parts, no [N, K, M] products
            best = parts[:, 0] @ self.item_weight.t()
            for part in range(1, parts.size(1)):
                torch.maximum(best, parts[:, part] @ self.item_weight.t(), out=best)
        # s2i_scale is 1 by default: no pass over [N, n_items] (and its gradient) for it
        return best if self.s2i_scale == 1.0 else best * self.s2i_scale

    def future_sequences(self, item_seq, lengths, target, cut):
        """The reversed future ``[x_T, ..., x_{t+1}]`` of every row, right-padded.

        Row ``b``'s sequence is ``item_seq[b, :lengths[b]]`` followed by ``target[b]``;
        ``cut[b]`` (``1 .. lengths[b]``) is the length ``t`` of its input part.
        Returns ``(future [B, L], future_len [B])``.
        """
        width = item_seq.size(1)
        j = torch.arange(width, device=item_seq.device)[None, :]
        future_len = lengths - cut + 1
        source = (lengths[:, None] - j).clamp(min=0, max=width - 1)  # item_seq index
        future = item_seq.gather(1, source)
        future[:, 0] = target
        return future.masked_fill(j >= future_len[:, None], 0), future_len

    def seq2seq_loss(self, prefix_parts, interaction, cut=None):
        """Eqs. 3-4 for one cut per row; ``prefix_parts`` is ``[B, L, K, D]``.

        ``cut`` (``[B]``, each in ``1 .. n``) is the input length ``t`` of each row;
        drawn uniformly when not given.
        """
        item_seq = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN]
        batch = item_seq.size(0)
        if cut is None:
            cut = self.draw_cuts(lengths)
        rows = torch.arange(batch, device=item_seq.device)
        inputs = prefix_parts[rows, cut - 1]  # [B, K, D], x_{1:t}
        future, future_len = self.future_sequences(
            item_seq, lengths, interaction[self.POS_ITEM_ID], cut
        )
        labels = self.intents(future, future_len, side="label")  # [B, K, D]
        k = self.n_intents
        # distributed: against every rank's labels, the confidence kept over all terms
        dim = labels.size(-1)  # explicit: batch may be 0 (a rank's empty share)
        labels, offset = gather_rows(labels.reshape(batch * k, dim))
        logits = inputs.reshape(batch * k, dim) @ labels.t()
        terms = F.cross_entropy(
            logits * self.scale,
            torch.arange(batch * k, device=logits.device) + offset,
            reduction="none",
        )  # [B * K], (u, k) against all (u', k')
        every_term, _ = gather_rows(terms.detach())
        keep = confidence_mask(every_term, self.s2s_lambda)[
            offset : offset + terms.numel()
        ]
        return global_average((terms * keep).sum(), batch)

    def draw_cuts(self, lengths):
        """A uniform cut ``t`` in ``1 .. n`` for each row of lengths ``n``.  # [B]"""
        cut = 1 + (torch.rand(lengths.size(0), device=lengths.device) * lengths).long()
        return torch.minimum(cut, lengths)

    def seq2item_loss(self, prefix_parts, interaction):
        """Eq. 6 at every real position: CE over all items, or in-batch; with
        ``loss_type`` BCE or BPR, against sampled negatives (the item's score is its
        best part's, as in prediction)."""
        targets = self.next_item_targets(interaction)
        scored = targets > 0
        parts = prefix_parts[scored]  # [N, K, D]
        target = targets[scored]
        if self.loss_type != "CE":
            return self.sampled_next_item_loss(
                interaction,
                targets,
                lambda items: torch.einsum(
                    "nkd,nmd->nmk", parts, take_rows(self.item_weight, items)
                ).amax(-1)
                * self.s2i_scale,
            )
        if self.s2i_loss == "CE":
            return cross_entropy(self.item_scores(parts), target)
        # Eq. 6: the target under its best part, against every target of the batch
        # (every rank's, in a distributed run) under every part
        targets_all, offset = gather_rows(self.item_embedding(target))
        scores = torch.einsum("nkd,md->nkm", parts, targets_all)
        scores = scores * self.s2i_scale  # [N, K, N]
        rows = torch.arange(target.size(0), device=target.device)
        positive = scores[rows, :, rows + offset].amax(1)  # [N]
        return global_mean(torch.logsumexp(scores.flatten(1), dim=1) - positive)

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        prefix_parts = self.intents(
            item_seq, interaction[self.ITEM_SEQ_LEN], every_prefix=True
        )  # [B, L, K, D]
        s2i = self.seq2item_loss(prefix_parts, interaction)
        if self.s2s_lambda > 0 and self.s2s_weight > 0:
            s2s = self.seq2seq_loss(prefix_parts, interaction)
        else:
            s2s = s2i.new_zeros(())
        return DSSRecLoss(s2i, self.s2s_weight * s2s)

    def forward(self, item_seq, item_seq_len):
        return self.intents(item_seq, item_seq_len)  # [B, K, D]

    def full_sort_predict(self, interaction):
        parts = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return self.item_scores(parts)  # [B, n_items]

    def predict(self, interaction):
        parts = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID]
        scores = torch.einsum("bkd,bd->bk", parts, self.item_embedding(items))
        return scores.amax(1) * self.s2i_scale
