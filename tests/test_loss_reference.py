"""The code computes what it computed when each reference was written
(tests/loss_reference.py): the same loss parts, gradients and full-sort scores on one
fixed tiny batch, within 1e-5 relative. Guards the optimisations made for speed."""

import pytest
import torch
from distributed_check import gradient_difference
from loss_reference import REFERENCES, compute, path

TOLERANCE = 1e-5


def relative(got, expected, scale):
    return (got - expected).abs().max().item() / max(scale, 1e-30)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_losses_gradients_and_scores(name):
    expected = torch.load(path(name), weights_only=True)
    got = compute(*REFERENCES[name])
    losses = expected["losses"]
    assert relative(got["losses"], losses, losses.abs().max().item()) < TOLERANCE
    assert set(got["grads"]) == set(expected["grads"])
    grad_diff, worst = gradient_difference(got["grads"], expected["grads"])
    assert grad_diff < TOLERANCE, worst
    scores = expected["scores"]
    assert got["scores"].shape == scores.shape
    assert relative(got["scores"], scores, scores.abs().max().item()) < TOLERANCE
