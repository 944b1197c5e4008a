"""The S3-Rec authors' released pretraining, as a checkpoint this plugin's S3Rec
fine-tunes from.

    python benchmarks/s3rec_authors_weights.py --released=FILE --out=FILE
        [--dataset amazon-beauty] [--data_path PATH]

``--released`` is a pretrained model from the authors' repository
(github.com/aHuiWang/CIKM2020-S3Rec, ``reproduce/Beauty-epochs-150.pt``: their
``run_pretrain.py`` with its defaults on Beauty for 150 epochs, the checkpoint their
README fine-tunes from). The script writes the tensors this plugin's S3Rec shares with
it, under this plugin's names, as a checkpoint for ``pre_model_path``: the item table,
the position table, the Transformer layers and the input LayerNorm (36 tensors for two
layers). The four pretraining heads and the attribute table stay out: fine-tuning
reads neither. Then

    python run_recbole_ssl.py --model=S3Rec --dataset=amazon-beauty \\
        --config_files=S3Rec-paper --train_stage=finetune --pre_model_path=FILE

fine-tunes from their pretraining instead of this plugin's: a measurement that
separates the two stages when the S3Rec preset falls short of the paper (issue 21,
part 5). The layers are the same computation (RecBole's Transformer layer is the one
their ``modules.py`` writes: post-LayerNorm attention and GELU feed-forward, LayerNorm
eps 1e-12).

Item rows: their item id is the dataset's item token (``dataset_atomic/amazon-beauty``
was written from the same ``Beauty.txt``), so this plugin's row of token ``t`` is
their row ``int(t)``; padding is row 0 in both, and their mask row (the last,
``item_size - 1``) becomes this plugin's mask row (``n_items``). A token that is not
one of their ids stops the script with its name.

Position rows are copied as they are, which is not what they meant: the authors
left-pad (a sequence's last item at position 49), RecBole right-pads (its first item
at position 0), so only sequences of 50 items see the positions they were pretrained
with. Fine-tuning trains the position table either way; a shortfall of their weights
here may come partly from this, a gain despite it does not.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.checkpoint import save_checkpoint  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402
from recbole_ssl.errors import ConfigError, RecBoleSSLError  # noqa: E402

# (their name's part, ours), applied in order
RENAMES = (
    ("item_embeddings.", "item_embedding."),
    ("position_embeddings.", "position_embedding."),
    ("item_encoder.layer.", "trm_encoder.layer."),
    (".attention.", ".multi_head_attention."),
    (".intermediate.", ".feed_forward."),
)
# their tensors fine-tuning does not read
LEFT_OUT = ("attribute_embeddings.", "aap_norm.", "mip_norm.", "map_norm.", "sp_norm.")


def our_name(name):
    for theirs, ours in RENAMES:
        name = name.replace(theirs, ours)
    return name


def item_rows(item_tokens, their_rows):
    """For each of this dataset's item ids (``item_tokens``: RecBole's tokens by id,
    the padding first) and the mask row after them, the row of their item table."""
    rows = [0]
    for token in item_tokens[1:]:
        try:
            row = int(token)
        except ValueError:
            row = -1
        if not 1 <= row < their_rows - 1:
            raise ConfigError(
                f"item token {token!r} is not an item id of the released model "
                f"(1 .. {their_rows - 2}): the dataset is not the one it was "
                "pretrained on"
            )
        rows.append(row)
    return [*rows, their_rows - 1]  # their mask row, ours


def convert(released, item_tokens):
    """Their state dict as this plugin's S3Rec's tensors (see the module's doc)."""
    ours = {}
    for name, tensor in released.items():
        if name.startswith(LEFT_OUT):
            continue
        ours[our_name(name)] = tensor
    table = ours["item_embedding.weight"]
    ours["item_embedding.weight"] = table[item_rows(item_tokens, len(table))].clone()
    return ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--released", required=True, help="their Beauty-epochs-150.pt")
    parser.add_argument("--out", required=True, help="the checkpoint to write")
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", default=None)
    options = parser.parse_args()
    try:
        released = torch.load(options.released, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types
        sys.exit(f"--released: cannot read {options.released} ({type(e).__name__})")
    if "item_embeddings.weight" not in released:
        sys.exit(f"--released: {options.released} is not an S3-Rec model of theirs")
    config_dict = {"state": "ERROR"}
    if options.data_path:
        config_dict["data_path"] = options.data_path
    try:  # no such dataset, or not the one they pretrained on: one line
        config = Config("S3Rec", options.dataset, config_dict=config_dict)
        dataset = utils.create_dataset(config)
        tokens = list(dataset.field2id_token[dataset.iid_field])
        state = convert(released, tokens)
    except RecBoleSSLError as e:
        sys.exit(f"--dataset {options.dataset}: {e}")
    save_checkpoint(
        {
            "config": {
                "released": os.path.abspath(options.released),
                "dataset": options.dataset,
                "converted_by": "benchmarks/s3rec_authors_weights.py",
            },
            "state_dict": state,
        },
        options.out,
    )
    print(
        f"{options.out}: {len(state)} tensors of {options.released} "
        f"({len(tokens) - 1} items of {options.dataset})"
    )


if __name__ == "__main__":
    main()
