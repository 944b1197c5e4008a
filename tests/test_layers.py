"""The shared layer pieces compute what RecBole's full layers compute."""

import pytest
import torch
from recbole.model.layers import TransformerLayer
from torch import nn

from recbole_ssl.model.layers import first_token_output


def layer_and_inputs(dropout, act="gelu"):
    torch.manual_seed(0)
    layer = TransformerLayer(2, 16, 40, dropout, dropout, act, 1e-12)
    hidden = torch.randn(9, 5, 16, requires_grad=True)
    present = torch.ones(9, 5, dtype=torch.bool)
    present[:, 3:] = torch.rand(9, 2) < 0.5  # padded attribute tokens
    mask = torch.where(present[:, None, None, :], 0.0, -10000.0)
    return layer, hidden, mask


class Recorded(nn.Module):
    """A dropout that keeps each mask it draws (``replay`` off) or, with ``replay``,
    multiplies by a full-layer mask whose part the first token reads is the recorded
    one and whose other entries are fresh draws (which must not matter)."""

    def __init__(self, p, first_part):
        super().__init__()
        self.p, self.first_part, self.masks, self.replay = p, first_part, [], False

    def forward(self, x):
        if not self.training:
            return x
        mask = torch.empty_like(x).bernoulli_(1 - self.p) / (1 - self.p)
        if self.replay:
            mask[self.first_part] = self.masks.pop(0)
        else:
            self.masks.append(mask)
        return x * mask


def with_recorded_dropouts(layer, p):
    attention, feed_forward = layer.multi_head_attention, layer.feed_forward
    modules = {
        # where the first token's output reads each dropout, in the full layer
        "attn": Recorded(p, (slice(None), slice(None), slice(0, 1))),  # [N, H, 1, T]
        "out": Recorded(p, (slice(None), 0)),  # [N, D] of [N, T, D]
        "ffn": Recorded(p, (slice(None), 0)),
    }
    attention.attn_dropout = modules["attn"]
    attention.out_dropout = modules["out"]
    feed_forward.dropout = modules["ffn"]
    return modules.values()


def outputs_and_grads(run, layer, hidden):
    out = run()
    grads = torch.autograd.grad(
        out.square().sum(), [hidden, *layer.parameters()], allow_unused=True
    )
    return out, grads


def assert_same(first, full):
    (first_out, first_grads), (full_out, full_grads) = first, full
    assert torch.allclose(first_out, full_out, atol=1e-6)
    for got, expected in zip(first_grads, full_grads, strict=True):
        if expected is None:
            assert got is None or not got.any()
        else:
            # the key bias's gradient is zero up to rounding (softmax ignores shifts)
            assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 1.0])
@pytest.mark.parametrize("training", [True, False])
def test_first_token_output_equals_the_full_layer(dropout, training):
    layer, hidden, mask = layer_and_inputs(dropout)
    layer.train(training)
    full = outputs_and_grads(lambda: layer(hidden, mask)[:, 0], layer, hidden)
    first = outputs_and_grads(
        lambda: first_token_output(layer, hidden, mask), layer, hidden
    )
    assert_same(first, full)


@pytest.mark.parametrize("dropout", [0.3, 0.5])
def test_first_token_output_with_dropout_is_the_full_layer_on_the_same_masks(dropout):
    """In training the first token's output draws masks only where it reads them; with
    those masks in place of the full layer's, the output and gradients are the full
    layer's first row, whatever the full layer's other mask entries are."""
    layer, hidden, mask = layer_and_inputs(dropout)
    layer.train()
    recorded = with_recorded_dropouts(layer, dropout)
    first = outputs_and_grads(
        lambda: first_token_output(layer, hidden, mask), layer, hidden
    )
    # it drew exactly what it read: one [N, H, 1, T] and two [N, D] masks
    assert [tuple(m.masks[0].shape) for m in recorded] == [
        (9, 2, 1, 5),
        (9, 16),
        (9, 16),
    ]
    assert any((m.masks[0] == 0).any() for m in recorded)  # dropout did drop
    for module in recorded:
        module.replay = True
    full = outputs_and_grads(lambda: layer(hidden, mask)[:, 0], layer, hidden)
    assert all(not m.masks for m in recorded)  # every recorded mask was replayed
    assert_same(first, full)


def test_first_token_output_drops_with_the_layer_s_own_dropouts():
    """Its dropouts are the layer's modules, at their probability: each keeps an entry
    with probability 1 - p and scales it by 1 / (1 - p)."""
    layer, _, mask = layer_and_inputs(0.3)
    layer.train()
    seen = []
    modules = (
        layer.multi_head_attention.attn_dropout,
        layer.multi_head_attention.out_dropout,
        layer.feed_forward.dropout,
    )
    for module in modules:
        module.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
    hidden = torch.randn(4000, 5, 16)
    with torch.no_grad():
        first_token_output(layer, hidden, mask[:1].expand(4000, -1, -1, -1))
    assert [m for m, _, _ in seen] == list(modules)
    ratios = torch.cat([(o / i).flatten() for _, i, o in seen])
    ratios = ratios[torch.cat([i.flatten() for _, i, _ in seen]).abs() > 1e-3]
    assert torch.allclose(
        ratios[ratios > 0], torch.full_like(ratios[ratios > 0], 1 / 0.7), rtol=1e-4
    )
    assert (ratios > 0).float().mean().item() == pytest.approx(0.7, abs=0.01)
