"""SASRec with the plugin's two training regimes."""

from recbole.model.sequential_recommender import SASRec as RecBoleSASRec

from recbole_ssl.model.abstract_recommender import SequentialSSLRecommender


class SASRec(SequentialSSLRecommender, RecBoleSASRec):
    r"""SASRec: Self-Attentive Sequential Recommendation (Kang and McAuley, ICDM 2018).

    RecBole's SASRec (same layers, initialisation, prediction and parameters), trained
    per the plugin's ``train_mode``.

    NOTE:
        ``prefix`` gives exactly RecBole's loss. ``sequence`` (the default in
        ``SASRec.yaml``) scores the next item at every position of each user's longest
        training prefix, as the authors' code of the SSL papers does, with RecBole's
        CE (or BPR) loss instead of their one-negative BCE.
    """

    def encode(self, item_seq):
        """Causal Transformer outputs at every position.  # [B, L, H]"""
        positions = self.position_embedding.weight[: item_seq.size(1)]  # [L, H]
        input_emb = self.LayerNorm(self.item_embedding(item_seq) + positions)
        input_emb = self.dropout(input_emb)
        attention_mask = self.get_attention_mask(item_seq)
        return self.trm_encoder(
            input_emb, attention_mask, output_all_encoded_layers=False
        )[-1]

    def forward(self, item_seq, item_seq_len):
        # RecBole's forward with the encoder split out, so training can use all positions
        return self.gather_indexes(self.encode(item_seq), item_seq_len - 1)  # [B, H]

    def calculate_loss(self, interaction):
        seq_output = self.encode(interaction[self.ITEM_SEQ])
        return self.next_item_loss(seq_output, interaction, self.item_embedding.weight)
