"""recbole_ssl.model.layers: small pieces shared by the plugin's models."""

import torch.nn.functional as F


def take_rows(table, index):
    """``table[index]``: the rows of ``table`` (at least 2-D, ``[n, ...]``) at the
    integer ``index`` (any shape, ids in ``[0, n)``, on the table's device), with a
    backward pass that gives the same gradients on every run.  # [*index.shape, ...]

    Indexing with an integer tensor backpropagates through ``index_put_`` with
    accumulation, which on the CPU adds the rows of repeated ids from several threads
    in no fixed order (torch 2.x; see ``torch.use_deterministic_algorithms``): two
    identical runs on two threads ended with different weights. An embedding lookup
    adds them in a fixed order on the CPU (tests/test_determinism.py; the GPU is not
    tested). Every lookup where repeated ids carry gradients goes through here (the
    concat Gram matrix repeats a row only where it multiplies it by 0).
    """
    rows = F.embedding(index, table.flatten(1))  # [*index.shape, width]; n may be 0
    return rows.view(*index.shape, *table.shape[1:])


def length_bands(max_width, smallest=8):
    """Upper bounds of the length bands rows are grouped into: 8, 16, 32, ...,
    ``max_width``. Both the length-grouped encoder and the ``concat`` Gram matrix work
    band by band, so short sequences skip the work on padding."""
    bands = []
    width = smallest
    while width < max_width:
        bands.append(width)
        width *= 2
    return [*bands, max_width]


def first_token_output(layer, hidden, attention_mask):
    """``layer(hidden, attention_mask)[:, 0]`` of a RecBole ``TransformerLayer``,
    computing only what the first token's output needs: its query, the keys and values
    of every token, and the feed-forward of the first token alone (for MMInfoRec's
    7-token items, under a third of the full layer's multiply-adds). Its dropouts
    are the layer's own modules on what the first token reads: the full layer's
    distribution, not its random stream (drawing the full layer's masks and slicing
    them kept the stream, but most of those draws went unread).  # [N, D]

    ``hidden`` is ``[N, T, D]``, ``attention_mask`` broadcasts to ``[N, H, T, T]``.
    """
    attention, feed_forward = layer.multi_head_attention, layer.feed_forward
    batch, width, _ = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size
    first = hidden[:, 0]  # [N, D]
    # one query against a few keys: products and sums, which run ~2.5x faster than
    # batched matrix products of [1, S] x [S, T] on the CPU
    query = attention.query(first).view(batch, 1, heads, size)
    key = attention.key(hidden).view(batch, width, heads, size)
    value = attention.value(hidden).view(batch, width, heads, size)
    scores = (query * key).sum(-1).transpose(1, 2)[:, :, None]  # [N, H, 1, T]
    scores = scores / attention.sqrt_attention_head_size
    mask = attention_mask.expand(batch, heads, width, width)[:, :, :1]
    probs = attention.softmax(scores + mask)
    probs = attention.attn_dropout(probs)
    context = (probs[:, :, 0].transpose(1, 2)[..., None] * value).sum(1)  # [N, H, S]
    context = context.reshape(batch, heads * size)  # [N, D]
    out = attention.dense(context)
    out = attention.out_dropout(out)
    out = attention.LayerNorm(out + first)
    inner = feed_forward.dense_2(
        feed_forward.intermediate_act_fn(feed_forward.dense_1(out))
    )
    inner = feed_forward.dropout(inner)
    return feed_forward.LayerNorm(inner + out)
