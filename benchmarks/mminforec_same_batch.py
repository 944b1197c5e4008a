"""The MMInfoRec authors' model and this plugin's, with the same weights, on the same
batch: do they compute the same thing?

    python benchmarks/mminforec_same_batch.py --authors=PATH [--users 256] [--seed 2020]
        [--dataset amazon-beauty] [--data_path DIR]

``PATH`` is a checkout of github.com/RuihongQiu/MMInfoRec (its ``*.py`` and
``data/Beauty.txt``, ``data/Beauty_item2attributes.json``). Their ``MMInfoRecModel`` is
built as ``benchmarks/mminforec_authors.py`` builds it (``beauty.sh``'s arguments,
their ``set_seed(seed)``, their initialisation), and this plugin's ``MMInfoRec`` under
the ``MMInfoRec-paper`` preset with the authors' forms where the preset keeps the
plugin's: ``input_norm: False`` (no LayerNorm before ``g_enc`` or ``g_ta``),
``memory_mlp_layers: 1`` (their ``mb_fc``), ``layer_norm_eps: 1e-5`` (their
``nn.LayerNorm``'s) and ``mince_temperature: 1 / 0.3`` exactly. Their weights are
copied into it (item and attribute rows by token: the dataset's tokens are their ids),
and, with dropout off, the script prints the largest differences between:

* ``z`` of every item: their ``cal_test_emb`` against this plugin's item table;
* the recommendation vectors ``z_hat`` of the first ``--users`` users' test histories
  (their ``finetune(batch, 'test')`` against ``forward``) and their full-sort scores;
* MINCE on those users' training sequences: their ``finetune(batch, 'train')``
  against this plugin's :func:`recbole_ssl.model.losses.mince` over the same
  instances (every item of the batch's sequences, first items included, as theirs),
  and over this plugin's instances (the ground truths of the scored positions only:
  the model's NOTE).

Equal figures (to float rounding) mean the two compute the same model; what is left
between the preset and the authors' code is then the settings (``input_norm``,
``memory_mlp_layers``), the instance set, the dropout draws, the data order and one
dropout this cannot see (dropout is off here): ``nn.TransformerEncoderLayer`` drops
the feed-forward's hidden units between its two Linears, RecBole's layer does not.
For the results page (issue 21, part 5).
"""

import argparse
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from mminforec_authors import BEAUTY_SH, build  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402
from recbole_ssl.model.losses import mince  # noqa: E402
from recbole_ssl.paths import PRESETS_DIR  # noqa: E402

AUTHORS_FORMS = {
    "input_norm": False,
    "memory_mlp_layers": 1,
    "layer_norm_eps": 1e-5,
    "mince_temperature": 1 / 0.3,
}
PRESET = str(PRESETS_DIR / "MMInfoRec-paper.yaml")


def transformer_layers(theirs, prefix, ours_prefix, n_layers):
    """Their ``nn.TransformerEncoderLayer`` tensors under RecBole's layer names."""
    out = {}
    for i in range(n_layers):
        t, o = f"{prefix}.layers.{i}.", f"{ours_prefix}.layer.{i}."
        weights = theirs[t + "self_attn.in_proj_weight"].chunk(3)
        biases = theirs[t + "self_attn.in_proj_bias"].chunk(3)
        for name, weight, bias in zip(
            ("query", "key", "value"), weights, biases, strict=True
        ):
            out[o + f"multi_head_attention.{name}.weight"] = weight
            out[o + f"multi_head_attention.{name}.bias"] = bias
        pairs = (
            ("self_attn.out_proj", "multi_head_attention.dense"),
            ("norm1", "multi_head_attention.LayerNorm"),
            ("linear1", "feed_forward.dense_1"),
            ("linear2", "feed_forward.dense_2"),
            ("norm2", "feed_forward.LayerNorm"),
        )
        for their_name, our_name in pairs:
            for kind in ("weight", "bias"):
                out[f"{o}{our_name}.{kind}"] = theirs[f"{t}{their_name}.{kind}"]
    return out


def rows_by_token(tokens):
    """Their row of each of this plugin's ids (``tokens``: RecBole's, by id)."""
    for token in tokens[1:]:
        if not str(token).isdigit():
            sys.exit(
                f"--dataset: token {token!r} is not one of their ids: not the data "
                "of their data/Beauty.txt"
            )
    return [0] + [int(token) for token in tokens[1:]]


def our_weights(theirs, dataset, model):
    """Their state dict as this plugin's MMInfoRec's (the authors' forms)."""
    item_rows = rows_by_token(dataset.field2id_token[dataset.iid_field])
    field = model.attributes.fields[0]
    attribute_rows = rows_by_token(dataset.field2id_token[field])
    layers = model.n_layers
    state = {
        "item_embedding.weight": theirs["item_embeddings.weight"][item_rows],
        "attribute_embedding.weight": theirs["attribute_embeddings.weight"][
            attribute_rows
        ],
        "position_embedding.weight": theirs["position_embeddings.weight"],
        "memory": theirs["mb.weight"],
        "memory_mlp.0.weight": theirs["mb_fc.weight"],
        "memory_mlp.0.bias": theirs["mb_fc.bias"],
        **transformer_layers(theirs, "g_enc", "attribute_encoder", layers),
        **transformer_layers(theirs, "ar_att", "trm_encoder", layers),
    }
    return state, item_rows


def padded(sequences, ids):
    """Right-padded rows of this plugin's ids, and their lengths."""
    width = max(len(s) for s in sequences)
    rows = torch.zeros(len(sequences), width, dtype=torch.long)
    for i, seq in enumerate(sequences):
        rows[i, : len(seq)] = torch.tensor([ids[item] for item in seq])
    return rows, torch.tensor([len(s) for s in sequences])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors", required=True, help="a checkout of MMInfoRec")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        args, net, their, *_ = build(
            options.authors, list(BEAUTY_SH), os.path.join(scratch, "s"), options.seed
        )
    import dataset as their_dataset  # their module, on the path build() set
    import utils as their_utils
    from torch.utils.data import DataLoader

    user_seq = their_utils.get_user_seqs(args.data_file)[0][: options.users]
    config_dict = dict(AUTHORS_FORMS, state="ERROR", seed=options.seed)
    if options.data_path:
        config_dict["data_path"] = options.data_path
    config = Config(
        "MMInfoRec", options.dataset, config_file_list=[PRESET], config_dict=config_dict
    )
    # the training part's dataset, as a run builds the model from it
    dataset = utils.data_preparation(config, utils.create_dataset(config))[0]._dataset
    model = utils.get_model("MMInfoRec")(config, dataset)
    state, item_rows = our_weights(net.state_dict(), dataset, model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    untouched = [n for n in missing if not n.startswith("predictor.")]
    if untouched or unexpected:
        sys.exit(f"weights not mapped: {untouched} {unexpected}")
    ids = {row: i for i, row in enumerate(item_rows)}  # their id -> ours
    net.eval()
    model.eval()
    print(
        f"# {len(user_seq)} users of {args.data_name}; seed {options.seed}; their "
        f"beauty.sh against the MMInfoRec-paper preset with {AUTHORS_FORMS}; dropout off"
    )
    with torch.no_grad():
        net.cal_test_emb()
        z_theirs = net.all_fused_embedding[item_rows[1:]]
        z_ours = model.item_table()[1:]
        print(f"z of every item           max |diff| {max_diff(z_theirs, z_ours):.2e}")

        def batch(kind):
            data = their_dataset.MMInfoRecDataset(
                args, user_seq, args.max_att_num, data_type=kind
            )
            loader = DataLoader(
                data, batch_size=len(data), collate_fn=their_dataset.collate_fn
            )
            return next(iter(loader))

        test = batch("test")
        sequences = [s[:-1][-args.max_seq_length :] for s in user_seq]
        item_seq, lengths = padded(sequences, ids)
        theirs = net.finetune(test, flag="test")
        ours = model.forward(item_seq, lengths)
        print(f"z_hat of the test rows    max |diff| {max_diff(theirs, ours):.2e}")
        scores_theirs = their.predict_full_att(theirs)[:, item_rows[1:]]
        scores_ours = model.full_sort_predict(
            {model.ITEM_SEQ: item_seq, model.ITEM_SEQ_LEN: lengths}
        )[:, 1:]
        print(
            f"full-sort scores          max |diff| {max_diff(scores_theirs, scores_ours):.2e}"
        )
        train = batch("train")
        loss_theirs = net.finetune(train, flag="train").item()
        sequences = [s[:-2][-args.max_seq_length :] for s in user_seq]
        item_seq, lengths = padded(sequences, ids)
        predicted = model.read_memory(model.contexts(item_seq))
        scored = torch.arange(item_seq.size(1))[None] < (lengths - 1)[:, None]
        truth = item_seq[:, 1:][scored[:, :-1]]
        everything = item_seq[item_seq > 0]
        q = model.copies

        def loss(instances):
            latents = model.encode_items(instances)[:, None].expand(-1, q, -1)
            return mince(
                predicted[scored], truth, latents, instances, model.temperature
            ).item()

        same = loss(everything)
        plugin = loss(truth)
    print(
        f"MINCE, their instances    theirs {loss_theirs:.6f}  ours {same:.6f}  "
        f"|diff| {abs(loss_theirs - same):.2e}"
    )
    print(
        f"MINCE, ours (ground truths only): {plugin:.6f} "
        f"(uniform over their {everything.numel()} instances: "
        f"{math.log(everything.numel()):.4f})"
    )


def max_diff(a, b):
    return (a - b).abs().max().item()


if __name__ == "__main__":
    main()
