"""What the intent term (ICL) of the authors' ICLRec computes, next to ours.

    python benchmarks/iclrec_authors.py --authors=PATH [--ours=CHECKPOINT]
        [--batches 8] [--seed 0]

``PATH`` is a checkout of github.com/salesforce/ICLRec (its ``src/`` and ``data/``).
Their own code is imported from it and run unchanged: ``SASRecModel`` with their
released Beauty model ``src/output/ICLRec-Beauty-1.pt``, their training dataset
(``RecWithContrastiveLearningDataset``: items[:-3], left padding, their random
crop/mask/reorder views) and their ``PCLoss``, under their Beauty script's settings
(``scripts/run_beauty.sh``: one layer, 256 intents, ``seq_representation_type mean``,
``intent_cf_weight 0.1``, no ``--de_noise``). The script adds what their trainer does
around those pieces: the E-step as their ``KMeans`` configures faiss (20 iterations,
5 restarts, seed 1; on the CPU, their class builds a GPU index), and the per-batch
query of the nearest centroid. It prints, for their model:

1. its test HR@20 and NDCG@20 under this plugin's protocol (full ranking over every
   item, the user's earlier items excluded): what the paper's Table 1 reports;
2. the E-step's input: the share of the padding positions in the mean over all 50
   positions that their k-means clusters (norm of the padding part / norm of the mean),
   and the cluster sizes;
3. per training batch (256 users): their ICL loss against its uniform level
   ``ln(2B - 1)``, the share of its gradient on the views' encoder outputs that falls on
   padding positions (their mask writes the padding id 0), how many users the per-batch
   query (training mode, dropout on) gives the cluster the E-step gave them, and the
   ratio of the weighted ICL gradient to the next-item BCE gradient over all weights.

With ``--ours`` (a ``-last`` checkpoint of this plugin's ICLRec: it keeps the E-step's
state), the same
for ours: ICL per view against ``ln B``, positive and mean logit, and the gradient
ratio (``icl_weight`` times the sum of the two views' terms, as trained).
"""

import argparse
import math
import os
import random
import sys
import types
from argparse import Namespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_timing import machine_line  # noqa: E402

from recbole_ssl.model.losses import bce_next_item  # noqa: E402
from recbole_ssl.trainer.user_groups import metrics_of  # noqa: E402

# their Beauty script (scripts/run_beauty.sh) over their main.py defaults
AUTHORS_ARGS = dict(
    hidden_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    hidden_act="gelu",
    attention_probs_dropout_prob=0.5,
    hidden_dropout_prob=0.5,
    initializer_range=0.02,
    max_seq_length=50,
    tao=0.2,
    gamma=0.7,
    beta=0.2,
    augment_type="random",
    n_views=2,
    noise_ratio=0.0,
    cuda_condition=False,
    temperature=1.0,
    num_intent_clusters=256,
    intent_cf_weight=0.1,
    batch_size=256,
)


def import_authors(path):
    """Their modules from ``path/src`` (``gensim``, imported by models.py for a class
    ICLRec does not use, is stubbed when missing)."""
    src = os.path.join(path, "src")
    if not os.path.isfile(os.path.join(src, "models.py")):
        sys.exit(f"iclrec_authors.py: --authors: no src/models.py under {path!r}")
    sys.path.insert(0, src)
    try:
        import gensim  # noqa: F401
    except ImportError:
        sys.modules["gensim"] = types.ModuleType("gensim")
    import datasets
    import models
    import modules

    return models, modules, datasets


def their_kmeans(x, k, seed=1):
    """k-means as their ``KMeans`` sets up faiss (on the CPU): centroids, assignment."""
    import faiss

    x = np.ascontiguousarray(x.numpy().astype("float32"))
    clus = faiss.Clustering(x.shape[1], k)
    clus.niter, clus.nredo, clus.seed = 20, 5, seed
    clus.max_points_per_centroid, clus.min_points_per_centroid = 4096, 0
    index = faiss.IndexFlatL2(x.shape[1])
    clus.train(x, index)
    centroids = faiss.vector_to_array(clus.centroids).reshape(k, -1)
    _, assignment = index.search(x, 1)
    return torch.tensor(centroids), torch.tensor(assignment[:, 0]).long(), index


def their_test(model, user_seq, n_items, batch=1024):
    """Test ranks of their model: the last item among all real items (ids 1..max),
    history excluded."""
    ranks = []
    length = model.args.max_seq_length
    weight = model.item_embeddings.weight[:n_items]
    with torch.no_grad():
        for start in range(0, len(user_seq), batch):
            seqs = user_seq[start : start + batch]
            ids = torch.tensor(
                [([0] * length + s[:-1])[-length:] for s in seqs], dtype=torch.long
            )
            scores = model(ids)[:, -1] @ weight.t()
            scores[:, 0] = -torch.inf
            for row, s in enumerate(seqs):
                scores[row, torch.tensor(s[:-1])] = -torch.inf
            target = torch.tensor([s[-1] for s in seqs])
            own = scores.gather(1, target[:, None])
            ranks.append((scores > own).sum(1))
    return torch.cat(ranks).numpy()


def bce(seq_out, pos, neg, weight):
    """Their next-item loss (trainers.py ``cross_entropy``, the plugin's
    ``bce_next_item``): one negative per real position, averaged over them."""
    real = pos > 0
    out = seq_out[real]
    return bce_next_item(
        (out * weight[pos[real]]).sum(-1), (out * weight[neg[real]]).sum(-1)[:, None]
    )


def grad_norm(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float((g * g).sum()) for g in grads if g is not None))


def probe_authors(path, n_batches, seed):
    models, modules, datasets = import_authors(path)
    from torch.utils.data import DataLoader

    user_seq = []
    with open(os.path.join(path, "data", "Beauty.txt")) as f:
        for line in f:
            user_seq.append([int(i) for i in line.split()[1:]])
    max_item = max(max(s) for s in user_seq)
    args = Namespace(item_size=max_item + 2, **AUTHORS_ARGS)
    model = models.SASRecModel(args)
    state = torch.load(
        os.path.join(path, "src", "output", "ICLRec-Beauty-1.pt"), map_location="cpu"
    )
    model.load_state_dict(state)
    print(f"their released Beauty model: {len(user_seq)} users, {max_item} items")

    model.eval()
    ranks = their_test(model, user_seq, max_item + 1)
    m = metrics_of(ranks, [20])
    print(
        f"1. test, full ranking, history excluded: HR@20 {m['hit@20']:.4f}  "
        f"NDCG@20 {m['ndcg@20']:.4f}"
    )

    dataset = datasets.RecWithContrastiveLearningDataset(
        args, user_seq, data_type="train"
    )
    inputs = torch.stack([dataset[u][0][1] for u in range(len(user_seq))])
    with torch.no_grad():
        outputs = torch.cat([model(b) for b in inputs.split(1024)])  # eval mode
    mean = outputs.mean(1)  # their seq_representation_type mean: all 50 positions
    padding = (outputs * (inputs == 0)[..., None]).sum(1) / outputs.size(1)
    share = (padding.norm(dim=1) / mean.norm(dim=1)).mean()
    centroids, assignment, index = their_kmeans(mean, args.num_intent_clusters)
    sizes = torch.bincount(assignment, minlength=args.num_intent_clusters)
    print(
        f"2. E-step input (mean over 50 positions): padding part / mean, by norm "
        f"{share:.3f}; centroid norm {centroids.norm(dim=1).mean():.2f} (the loss uses "
        f"unit length); cluster sizes max {int(sizes.max())}, median "
        f"{int(sizes.float().median())}"
    )

    pcl = modules.PCLoss(args.temperature, "cpu")
    unit = F.normalize(centroids, p=2, dim=1)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=torch.utils.data.RandomSampler(
            dataset, generator=torch.Generator().manual_seed(seed)
        ),
    )
    rows = []
    model.train()
    for step, (rec, views, _) in enumerate(loader):
        if step == n_batches:
            break
        users, ids, pos, neg, _ = rec
        seq_out = model(ids)
        rec_loss = bce(seq_out, pos, neg, model.item_embeddings.weight)
        query = np.ascontiguousarray(seq_out.detach().mean(1).numpy().astype("float32"))
        _, nearest = index.search(query, 1)
        nearest = torch.tensor(nearest[:, 0]).long()
        view_ids = torch.cat(views[0])  # [2B, 50]
        view_out = model(view_ids)
        v1, v2 = view_out.mean(1).split(ids.size(0))
        icl = pcl(v1, v2, intents=[unit[nearest]], intent_ids=None)
        (g_out,) = torch.autograd.grad(icl, view_out, retain_graph=True)
        on_padding = (g_out[view_ids == 0] ** 2).sum() / (g_out**2).sum()
        ratio = grad_norm(args.intent_cf_weight * icl, params) / grad_norm(
            rec_loss, params
        )
        rows.append(
            (
                float(icl),
                math.log(2 * ids.size(0) - 1),
                float(on_padding),
                float((nearest == assignment[users]).float().mean()),
                ratio,
            )
        )
    icl, chance, on_padding, agree, ratio = np.mean(rows, axis=0)
    print(
        f"3. per batch ({len(rows)} batches of {args.batch_size}): ICL {icl:.3f} "
        f"(uniform ln(2B-1) {chance:.3f}); gradient on padding outputs "
        f"{on_padding:.1%}; per-batch intent = E-step intent for {agree:.1%} of "
        f"users; |grad {args.intent_cf_weight} ICL| / |grad BCE| {ratio:.3f}"
    )


def probe_ours(checkpoint, n_batches, seed):
    from recbole_ssl.model.losses import sequence_representation
    from recbole_ssl.quick_start import load_data_and_model

    config, model, _, train_data, _, _ = load_data_and_model(
        checkpoint, {"show_progress": False, "state": "ERROR"}
    )
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "intents" not in saved.get("trainer_state", {}):
        sys.exit(
            f"iclrec_authors.py: --ours: {checkpoint} holds no E-step state; "
            "give the run's '-last' checkpoint, which keeps it for resuming"
        )
    model.intents.load_state(saved["trainer_state"]["intents"], "cpu")
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = torch.bincount(
        model.intents.user_intents[model.intents.user_intents >= 0],
        minlength=model.intents.k,
    )
    print(
        f"ours ({config['model']}, epoch {saved['epoch']}, {checkpoint}): centroid "
        f"norm {model.intents.centroids.norm(dim=1).mean():.2f} (raw); cluster sizes "
        f"max {int(sizes.max())}, median {int(sizes.float().median())}"
    )
    rows = []
    model.train()
    for step, batch in enumerate(train_data):
        if step == n_batches:
            break
        seq_output, view_output, view_len = model.encode_with_views(batch)
        rec = model.next_item_loss(seq_output, batch, model.item_weight)
        views = sequence_representation(view_output, view_len, "mean").chunk(2)
        users = batch[model.USER_ID]
        terms = [
            model.intents.loss(
                v, users, model.fnm, model.icl_temperature, model.icl_similarity
            )
            for v in views
        ]
        # the first view's logits as the loss forms them (similarity, temperature)
        view, centroids = (
            views[0],
            model.intents.centroids[model.intents.user_intents[users]],
        )
        if model.icl_similarity == "cos":
            view, centroids = F.normalize(view, dim=1), F.normalize(centroids, dim=1)
        logits = view @ centroids.t() / model.icl_temperature
        ratio = grad_norm(model.icl_weight * sum(terms), params) / grad_norm(
            rec, params
        )
        rows.append(
            (
                float(sum(terms)) / 2,
                math.log(users.numel()),
                float(logits.diagonal().mean()),
                float(logits.mean()),
                ratio,
            )
        )
    icl, chance, positive, mean, ratio = np.mean(rows, axis=0)
    print(
        f"   per batch ({len(rows)} batches): ICL per view {icl:.3f} (uniform ln B "
        f"{chance:.3f}); positive logit {positive:.2f}, mean logit {mean:.2f}; "
        f"|grad {model.icl_weight} (ICL1 + ICL2)| / |grad next-item| {ratio:.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors", required=True)
    parser.add_argument("--ours", default=None)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    print(f"# ICLRec's intent term, theirs and ours; {machine_line()}")
    probe_authors(args.authors, args.batches, args.seed)
    if args.ours:
        probe_ours(args.ours, args.batches, args.seed)


if __name__ == "__main__":
    main()
