"""recbole_ssl.model.layers: small pieces shared by the plugin's models."""


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


def dropout_noise(module, shape, like):
    """The scaled mask ``module`` (an ``nn.Dropout``) would multiply a tensor of
    ``shape`` by, drawn as torch's CPU dropout draws it (``bernoulli_(1 - p)`` on a
    tensor of that shape, divided by ``1 - p``), so the random stream advances exactly
    as the full call would. ``None`` where the call draws nothing (evaluation, p 0)."""
    p = module.p
    if not module.training or p == 0:
        return None
    if p == 1:
        return like.new_zeros(())
    return like.new_empty(shape).bernoulli_(1 - p).div_(1 - p)


def first_token_output(layer, hidden, attention_mask):
    """``layer(hidden, attention_mask)[:, 0]`` of a RecBole ``TransformerLayer``,
    computing only what the first token's output needs: its query, the keys and values
    of every token, and the feed-forward of the first token alone (for MMInfoRec's
    7-token items, under a third of the full layer's multiply-adds). Dropout masks are
    drawn at the full layer's shapes and sliced, so training draws, and the random state
    after, are those of the full layer (on the CPU; CUDA fuses dropout differently, so
    there the masks differ, not their distribution).  # [N, D]

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
    noise = dropout_noise(attention.attn_dropout, (batch, heads, width, width), probs)
    if noise is not None:
        probs = probs * (noise if noise.dim() == 0 else noise[:, :, :1])
    context = (probs[:, :, 0].transpose(1, 2)[..., None] * value).sum(1)  # [N, H, S]
    context = context.reshape(batch, heads * size)  # [N, D]
    out = attention.dense(context)
    noise = dropout_noise(attention.out_dropout, hidden.shape, out)
    if noise is not None:
        out = out * (noise if noise.dim() == 0 else noise[:, 0])
    out = attention.LayerNorm(out + first)
    inner = feed_forward.dense_2(
        feed_forward.intermediate_act_fn(feed_forward.dense_1(out))
    )
    noise = dropout_noise(feed_forward.dropout, hidden.shape, inner)
    if noise is not None:
        inner = inner * (noise if noise.dim() == 0 else noise[:, 0])
    return feed_forward.LayerNorm(inner + out)
