"""Losses, gradients and scores of a model on one fixed batch of the tiny dataset, kept
so that a change made for speed can be shown to compute the same thing.

    python tests/loss_reference.py [NAME ...]   # (re)write tests/data/reference/NAME.pt

Each reference is what the code computed when it was written: the loss parts of the
first training batch (drawn from a fixed seed), every parameter's gradient of their
sum, and the full-sort scores of the first validation rows.
``tests/test_loss_reference.py`` recomputes them and compares (1e-5, relative). Rewrite
a reference only when a change is meant to alter the computation, and say so in the
commit.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
from bench_probe import build  # noqa: E402
from distributed_check import gradients  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

REFERENCE_DIR = HERE / "data" / "reference"
DATA_DIR = HERE / "data"
SCORED_ROWS = 8
# name: (model, settings)
REFERENCES = {
    "DSSRec": ("DSSRec", {}),
    "MMInfoRec": ("MMInfoRec", {}),
    # no dropout anywhere, two g_enc layers and the authors' attcc: the computation
    # itself, whatever the dropout masks are drawn as
    "MMInfoRec-no-dropout": (
        "MMInfoRec",
        {
            "attribute_dropout_prob": 0.0,
            "hidden_dropout_prob": 0.0,
            "attn_dropout_prob": 0.0,
            "attribute_layers": 2,
            "item_encoding": "attcc",
        },
    ),
}


def compute(model_name, settings):
    """``{"losses", "grads", "scores"}`` of ``model_name`` with ``settings`` on the
    tiny dataset (see the module docstring)."""
    config_dict = dict(
        settings,
        data_path=str(DATA_DIR),
        state="ERROR",
        show_progress=False,
        train_batch_size=64,
    )
    config, model, train_data, valid_data, _ = build(model_name, config_dict, "tiny")
    batch = next(iter(train_data))
    init_seed(config["seed"], True)  # what the loss draws (dropout, cuts, views)
    model.train()
    # anomaly detection off, as the trainers train (RecBole's sine.py turns it on)
    with torch.autograd.set_detect_anomaly(False):
        losses = model.calculate_loss(batch)
        losses = tuple(losses) if isinstance(losses, tuple) else (losses,)
        sum(losses).backward()
    model.eval()
    with torch.no_grad():
        interaction = next(iter(valid_data))[0][torch.arange(SCORED_ROWS)]
        scores = model.full_sort_predict(interaction)
    return {
        "losses": torch.stack([loss.detach() for loss in losses]),
        "grads": gradients(model),
        "scores": scores.detach().clone(),
    }


def path(name):
    return REFERENCE_DIR / f"{name}.pt"


def main(names):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    for name in names or sorted(REFERENCES):
        torch.save(compute(*REFERENCES[name]), path(name))
        print(f"wrote {path(name)}")


if __name__ == "__main__":
    main(sys.argv[1:])
