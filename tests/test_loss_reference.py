"""The code computes what it computed when each reference was written
(tests/loss_reference.py): the same loss parts, gradients and full-sort scores on one
fixed tiny batch, within 1e-5 relative. Guards the optimisations made for speed."""

import pytest
import torch
from loss_reference import REFERENCES, compute, path

TOLERANCE = 1e-5
FLOOR = 1e-3  # a gradient that is zero in exact arithmetic holds rounding noise only


def relative(got, expected, scale):
    return (got - expected).abs().max().item() / max(scale, 1e-30)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_losses_gradients_and_scores(name):
    expected = torch.load(path(name), weights_only=True)
    got = compute(*REFERENCES[name])
    losses = expected["losses"]
    assert relative(got["losses"], losses, losses.abs().max().item()) < TOLERANCE
    assert set(got["grads"]) == set(expected["grads"])
    largest = max(g.abs().max().item() for g in expected["grads"].values())
    for param, grad in expected["grads"].items():
        scale = max(grad.abs().max().item(), FLOOR * largest)
        assert relative(got["grads"][param], grad, scale) < TOLERANCE, param
    scores = expected["scores"]
    assert got["scores"].shape == scores.shape
    assert relative(got["scores"], scores, scores.abs().max().item()) < TOLERANCE
