"""How strongly the contrastive term pulls on the encoder, next to the next-item term.

    python benchmarks/contrastive_gradients.py [--dataset amazon-beauty] [--model CL4SRec]

For each similarity setting, a freshly initialised model (seed 2020) takes the first
training batch; the script prints the gradient norm over the Transformer's parameters
of the next-item loss and of the weighted contrastive loss (``cl_weight`` times NT-Xent),
and their ratio. It backs the choice of the default similarity (see CL4SRec's docstring).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402

SETTINGS = (  # (representation, similarity, temperature)
    ("concat", "dot", 1.0),
    ("mean", "dot", 1.0),
    ("last", "dot", 1.0),
    ("concat", "cos", 1.0),
    ("concat", "cos", 0.2),
    ("last", "cos", 0.2),
)


def encoder_gradient_norm(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    squares = [p.grad.pow(2).sum() for p in model.trm_encoder.parameters()]
    return torch.stack(squares).sum().sqrt().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--model", default="CL4SRec")
    parser.add_argument("--data_path", default=None)
    args = parser.parse_args()
    extra = {"data_path": args.data_path} if args.data_path else {}
    config = Config(
        args.model, args.dataset, config_dict=dict(state="WARNING", **extra)
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = utils.data_preparation(config, utils.create_dataset(config))
    batch = next(iter(train_data))

    print(f"# {args.dataset}, {args.model}, first batch of {len(batch)} rows, at init")
    print(f"{'setting':<22}{'rec grad':>10}{'cl grad':>10}{'cl / rec':>10}")
    for representation, similarity, temperature in SETTINGS:
        config["cl_representation"] = representation
        config["cl_similarity"] = similarity
        config["cl_temperature"] = temperature
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data._dataset).train()
        losses = model.calculate_loss(batch)
        rec = encoder_gradient_norm(model, losses.rec_loss)
        cl = encoder_gradient_norm(model, losses.cl_loss)
        name = f"{representation} {similarity} {temperature:g}"
        print(f"{name:<22}{rec:>10.4f}{cl:>10.4f}{cl / rec:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
