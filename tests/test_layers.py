"""The shared layer pieces compute what RecBole's full layers compute."""

import pytest
import torch
from recbole.model.layers import TransformerLayer

from recbole_ssl.model.layers import first_token_output


def layer_and_inputs(dropout, act="gelu"):
    torch.manual_seed(0)
    layer = TransformerLayer(2, 16, 40, dropout, dropout, act, 1e-12)
    hidden = torch.randn(9, 5, 16, requires_grad=True)
    present = torch.ones(9, 5, dtype=torch.bool)
    present[:, 3:] = torch.rand(9, 2) < 0.5  # padded attribute tokens
    mask = torch.where(present[:, None, None, :], 0.0, -10000.0)
    return layer, hidden, mask


@pytest.mark.parametrize("dropout", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("training", [True, False])
def test_first_token_output_equals_the_full_layer(dropout, training):
    layer, hidden, mask = layer_and_inputs(dropout)
    layer.train(training)
    results = []
    for run in (
        lambda: layer(hidden, mask)[:, 0],
        lambda: first_token_output(layer, hidden, mask),
    ):
        torch.manual_seed(7)
        out = run()
        after = torch.rand(
            3
        )  # the random stream continues where the full layer left it
        grads = torch.autograd.grad(
            out.square().sum(), [hidden, *layer.parameters()], allow_unused=True
        )
        results.append((out, after, grads))
    (full, full_after, full_grads), (first, first_after, first_grads) = results
    assert torch.allclose(first, full, atol=1e-6)
    assert torch.equal(first_after, full_after)
    for got, expected in zip(first_grads, full_grads, strict=True):
        if expected is None:
            assert got is None or not got.any()
        else:
            # the key bias's gradient is zero up to rounding (softmax ignores shifts)
            assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
