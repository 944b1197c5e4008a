"""One batch's gradients are the same on every run, on two CPU threads.

RecBole's ``reproducibility: True`` promises runs that repeat; on two threads, an
integer-tensor lookup of rows that carry gradients (``weight[ids]`` with repeated ids)
summed its backward pass in no fixed order, and two identical runs of every model
under BCE, and of MMInfoRec under any loss, ended apart. ``take_rows`` fixes the
order. With the plain lookup back in the sampled loss or in MINCE, these tests failed
(checked on 2026-12-04, also under pytest-xdist), as in SSM's, DSSRec's and MMInfoRec's
sampled losses (checked on their own cases).
"""

import pytest
import torch
from conftest import build, ready_for_one_batch
from recbole.utils import init_seed

from recbole_ssl.model.layers import take_rows

CASES = {
    "SASRec BCE": ("SASRec", {"loss_type": "BCE"}),
    "SASRec SSM": ("SASRec", {"loss_type": "SSM"}),
    "CL4SRec BCE": ("CL4SRec", {"loss_type": "BCE"}),
    "CoSeRec BCE": ("CoSeRec", {"loss_type": "BCE"}),
    "ICLRec BCE": ("ICLRec", {"loss_type": "BCE"}),
    "DSSRec BCE": ("DSSRec", {"loss_type": "BCE"}),
    "MMInfoRec CE": ("MMInfoRec", {"loss_type": "CE"}),
    "MMInfoRec BCE": ("MMInfoRec", {"loss_type": "BCE"}),
    "S3Rec BCE": ("S3Rec", {"loss_type": "BCE"}),
}


def assert_same_gradients_on_every_run(model, batch, loss=None):
    """Three passes of ``loss`` (default: ``model.calculate_loss``) over ``batch``, each
    from the same weights and random states (the model's and torch's), give the same
    gradients bit for bit (the unordered sum differed in most repeats, not in all)."""
    loss = loss or model.calculate_loss
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    random_state = model.random_state()

    def gradients():
        model.load_state_dict(initial)
        model.set_random_state(random_state)
        model.zero_grad()
        model.train()
        init_seed(1, True)
        value = loss(batch)
        (sum(value) if isinstance(value, tuple) else value).backward()
        return {
            name: parameter.grad.clone()
            for name, parameter in model.named_parameters()
            if parameter.grad is not None
        }

    first = gradients()
    for _ in range(2):
        again = gradients()
        assert [n for n in first if not torch.equal(first[n], again[n])] == []


@pytest.mark.parametrize("case", list(CASES))
def test_one_batch_gives_the_same_gradients_on_every_run(
    case, tiny_config, two_threads
):
    name, settings = CASES[case]
    config_dict = dict(
        tiny_config, hidden_size=32, inner_size=64, train_batch_size=256, **settings
    )
    _, model, train_data, _, _ = build(name, config_dict)
    ready_for_one_batch(name, model, train_data)
    assert_same_gradients_on_every_run(model, next(iter(train_data)))


def test_s3rec_pretraining_gives_the_same_gradients_on_every_run(
    tiny_config, two_threads
):
    config_dict = dict(tiny_config, hidden_size=32, inner_size=64, train_batch_size=256)
    _, model, train_data, _, _ = build("S3Rec", config_dict)
    model.set_stage("pretrain")
    assert_same_gradients_on_every_run(
        model, next(iter(train_data)), loss=model.pretrain_loss
    )


@pytest.mark.parametrize("shape", [(7,), (3, 4), (0,)])
def test_take_rows_is_indexing(shape):
    torch.manual_seed(0)
    table = torch.randn(6, 2, 5, requires_grad=True)
    index = torch.randint(0, 6, shape)
    taken = take_rows(table, index)
    expected = table[index]
    assert taken.shape == expected.shape == (*shape, 2, 5)
    assert torch.equal(taken, expected)
    upstream = torch.randn(expected.shape)
    (grad,) = torch.autograd.grad((taken * upstream).sum(), table)
    (grad_expected,) = torch.autograd.grad((expected * upstream).sum(), table)
    assert torch.allclose(grad, grad_expected, atol=1e-6)
    assert grad[index.unique()].abs().sum() > 0 or index.numel() == 0


def test_take_rows_from_an_empty_table():
    """A distributed rank with no scored position looks up nothing in nothing."""
    table = torch.zeros(0, 4, 8, requires_grad=True)
    taken = take_rows(table, torch.zeros(0, dtype=torch.long))
    assert taken.shape == (0, 4, 8)
    taken.sum().backward()
    assert table.grad.shape == table.shape
