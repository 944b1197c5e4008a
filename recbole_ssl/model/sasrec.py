"""SASRec with the plugin's two training regimes."""

from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
from torch import nn

from recbole_ssl.model.abstract_recommender import SequentialSSLRecommender
from recbole_ssl.model.layers import length_bands


class SASRec(SequentialSSLRecommender, RecBoleSASRec):
    r"""SASRec: Self-Attentive Sequential Recommendation (Kang and McAuley, ICDM 2018).

    RecBole's SASRec (same layers, initialisation, prediction and parameters), trained
    per the plugin's ``train_mode``.

    NOTE:
        ``prefix`` gives exactly RecBole's loss. ``sequence`` (the default in
        ``SASRec.yaml``) scores the next item at every position of each user's longest
        training prefix, as the authors' code of the SSL papers does. ``loss_type``:
        CE over all items (the default), or the papers' BCE with ``train_neg_num``
        sampled negatives per position (or BPR), from the items the user has not
        had in training (:mod:`recbole_ssl.model.negatives`).
    """

    mask_token = None  # an item id for masked positions, once add_mask_token ran

    def add_mask_token(self):
        """Give the item table one extra row, id ``n_items``, for a mask token.

        The token is never scored: :attr:`item_weight` and :meth:`full_sort_predict`
        use the real items only. Returns the token id.
        """
        self.mask_token = self.n_items
        self.item_embedding = nn.Embedding(
            self.n_items + 1, self.hidden_size, padding_idx=0
        )
        self.item_embedding.apply(self._init_weights)
        return self.mask_token

    @property
    def item_weight(self):
        """The embeddings of the real items (and padding), without a mask token."""
        return self.item_embedding.weight[: self.n_items]

    def encode(self, item_seq, bidirectional=False, item_emb=None):
        """Transformer outputs at every position; zeros at padding.  # [B, L, H]

        Attention is causal, or over all real positions with ``bidirectional``.
        ``item_emb`` (``[B, L, H]``) replaces the item embedding lookup as the input
        (a model that encodes items itself); ``item_seq`` still gives the padding.
        Rows are encoded in groups of similar length, each cut to the width of its
        longest row (8, 16, 32, ... up to L). With right padding the outputs at real
        positions do not depend on the padding after them (causal attention never
        looks ahead; bidirectional attention masks padding keys), so this is exact,
        and it skips most of the work on datasets of short sequences.
        """
        lengths = (item_seq > 0).sum(1)
        width = item_seq.size(1)
        output = None
        lower = 0
        for upper in length_bands(width):
            rows = ((lengths > lower) & (lengths <= upper)).nonzero(as_tuple=True)[0]
            lower = upper
            if rows.numel() == 0:
                continue
            part = self.encode_full(
                item_seq[rows, :upper],
                bidirectional,
                None if item_emb is None else item_emb[rows, :upper],
            )
            if output is None:
                output = part.new_zeros(item_seq.size(0), width, part.size(-1))
            output[rows, :upper] = part
        if output is None:  # no row has an item
            return self.encode_full(item_seq, bidirectional, item_emb)
        return output.masked_fill(item_seq[..., None] == 0, 0.0)

    def encode_full(self, item_seq, bidirectional=False, item_emb=None):
        """RecBole's SASRec encoder on the whole padded width.  # [B, L, H]"""
        positions = self.position_embedding.weight[: item_seq.size(1)]  # [L, H]
        if item_emb is None:
            item_emb = self.item_embedding(item_seq)
        input_emb = self.LayerNorm(item_emb + positions)
        input_emb = self.dropout(input_emb)
        attention_mask = self.get_attention_mask(item_seq, bidirectional=bidirectional)
        return self.trm_encoder(
            input_emb, attention_mask, output_all_encoded_layers=False
        )[-1]

    def forward(self, item_seq, item_seq_len):
        # RecBole's forward with the encoder split out, so training can use all positions
        return self.gather_indexes(self.encode(item_seq), item_seq_len - 1)  # [B, H]

    def calculate_loss(self, interaction):
        seq_output = self.encode(interaction[self.ITEM_SEQ])
        return self.next_item_loss(seq_output, interaction, self.item_weight)

    def full_sort_predict(self, interaction):
        seq_output = self.forward(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        )
        return seq_output @ self.item_weight.t()  # [B, n_items]
