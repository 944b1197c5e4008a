"""One global batch through one process and through two gloo processes: the loss and
every parameter's gradient after DDP's averaging must agree. Used by
tests/test_distributed.py and benchmarks/distributed_equivalence.py.

Each of the two processes builds the same model (same seed) and the same first
training batch in plain one-process mode, computes the one-process loss and gradients
on the whole batch, then joins a gloo process group, wraps the model in
``DistributedDataParallel`` the way RecBole's trainer does (``set_reduce_hook``,
``sync_grad_loss``) and computes its loss on its shard of the batch: rows
``rank, rank + 2, ...``, as RecBole's ``DistributedSampler`` deals them (so the
shards may differ in size). The one-process batch holds the same rows in the ranks'
order (the order in which ranks gather rows). Dropout is off; whatever else a model draws at random per
row (augmented views, sampled negatives) is drawn once for the whole batch and each
shard takes its rows' draws.
"""

import os
import sys
import traceback

import torch

WORLD = 2
FLOOR = 1e-3


def no_dropout(config_dict):
    """``config_dict`` with every dropout of the plugin's models at 0."""
    keys = (
        "hidden_dropout_prob",
        "attn_dropout_prob",
        "attribute_dropout_prob",
        "instance_dropout_prob",
        "memory_dropout_prob",
    )
    return dict(config_dict, **{key: 0.0 for key in keys})


def fix_random_draws(model, batch):
    """Draw the batch's random per-row inputs once and make the model reuse them for
    any shard ``batch[rows]``; returns ``shard(rows)`` that sets the current rows."""
    current = {"rows": torch.arange(len(batch))}
    if hasattr(model, "augment_views"):
        views, lengths = model.augment_views(
            batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
        )
        n = len(batch)

        def augment_views(item_seq, item_seq_len):
            rows = current["rows"]
            picked = torch.cat([rows, rows + n])
            return views[picked], lengths[picked]

        model.augment_views = augment_views

    if hasattr(model, "draw_cuts"):  # DSSRec's seq2seq cut per row
        cuts = model.draw_cuts(batch[model.ITEM_SEQ_LEN])
        model.draw_cuts = lambda lengths: cuts[current["rows"]]
    if hasattr(model, "pretrain_draws"):  # S3-Rec's masks, segments and donors
        draws = model.pretrain_draws(
            batch[model.ITEM_SEQ_LEN],
            batch[model.ITEM_SEQ].size(1),
            len(batch),
            batch[model.USER_ID],
        )

        def pretrain_draws(length, width, total_rows, users=None):
            assert total_rows == len(batch)  # the donors index the global batch
            return {key: value[current["rows"]] for key, value in draws.items()}

        model.pretrain_draws = pretrain_draws

    negatives = getattr(model, "negatives", None)
    if hasattr(negatives, "log_q"):  # SSM: negatives shared by the batch, per batch
        sample = negatives.sample

        def first_draw(num, device):  # each loss here is a run's first batch: every
            negatives.generator = None  # rank's sampler starts from the seed
            return sample(num, device)

        negatives.sample = first_draw

    def shard(rows):
        current["rows"] = rows
        return batch[rows]

    return shard


def prepare_model(model, train_data, config):
    """What a trainer does before the batch: the item correlation of CoSeRec's
    operators, ICLRec's E-step."""
    if getattr(model, "needs_item_correlation", False):
        from recbole_ssl.data.correlation import ItemCorrelation

        correlation = ItemCorrelation.from_dataset(
            train_data._dataset, k=config["correlation_topk"], seed=config["seed"]
        )
        correlation.use_memory_based()
        model.set_item_correlation(correlation)
    intents = getattr(model, "intents", None)
    if hasattr(intents, "estimate"):  # ICLRec's prototypes (DSSRec's is a method)
        dataset = train_data._dataset
        feat = dataset.inter_feat
        model.eval()
        intents.estimate(
            lambda seq, length: model.intent_representation(seq, length),
            feat[model.ITEM_SEQ],
            feat[model.ITEM_SEQ_LEN],
            feat[model.USER_ID],
            256,
            "cpu",
        )
    model.train()


def total_loss(model, batch):
    """``calculate_loss`` summed over its parts, as RecBole's trainer sums them."""
    losses = model.calculate_loss(batch)
    return sum(losses) if isinstance(losses, tuple) else losses


def gradients(model):
    """``{name: a copy of the parameter's gradient}``, zeros where it has none."""
    return {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in model.named_parameters()
    }


def gradient_difference(grads, reference):
    """``(largest relative difference, worst parameter or None)`` of ``grads`` against
    ``reference`` (both ``{name: gradient}``): per parameter the largest difference
    over the reference's largest entry. A parameter whose gradient is zero in exact
    arithmetic (a key bias: softmax ignores a shift of all its logits) holds rounding
    noise only; its scale is floored at FLOOR times the largest entry of the model."""
    largest = max(g.abs().max().item() for g in reference.values())
    worst, difference = None, 0.0
    for name, expected in reference.items():
        scale = max(expected.abs().max().item(), FLOOR * largest, 1e-30)
        diff = (grads[name] - expected).abs().max().item() / scale
        if diff > difference:
            worst, difference = name, diff
    return difference, worst


def loss_and_gradients(model, batch):
    model.zero_grad()
    loss = total_loss(model, batch)
    loss.backward()
    return loss.detach(), gradients(model)


def rank_main(rank, model_name, dataset, config_dict, port, queue, stage=None):
    """One of the two processes; puts ``(loss diff, grad diff, worst parameter)`` (rank
    0) or None on ``queue``, or the error text."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, here)
        sys.path.insert(0, os.path.dirname(here))  # the repository, for recbole_ssl
        from bench_probe import build
        from torch.nn.parallel import DistributedDataParallel

        torch.set_num_threads(1)
        sys.argv = sys.argv[
            :1
        ]  # RecBole's Config reads --key=value from the command line
        config, model, train_data, _, _ = build(
            model_name, no_dropout(config_dict), dataset
        )
        if stage is not None:
            model.set_stage(stage)
        prepare_model(model, train_data, config)
        batch = next(iter(train_data))
        shard = fix_random_draws(model, batch)
        # the global batch in the ranks' order (rank 0's rows, then rank 1's), where
        # a row's place matters (S3-Rec's donor rows); every other term ignores it
        shards = [torch.arange(r, len(batch), WORLD) for r in range(WORLD)]
        one_loss, one_grads = loss_and_gradients(model, shard(torch.cat(shards)))

        torch.distributed.init_process_group(
            "gloo", rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}"
        )
        ddp = DistributedDataParallel(model)
        model.zero_grad()
        forward = model.forward  # RecBole's set_reduce_hook
        model.forward = lambda x: x
        ddp(torch.zeros(1))
        model.forward = forward
        sync = sum(torch.sum(p) * 0 for p in model.parameters())  # sync_grad_loss
        loss = total_loss(model, shard(shards[rank]))
        (loss + sync).backward()
        total = loss.detach().clone()
        torch.distributed.all_reduce(total)
        loss_diff = abs(total.item() / WORLD - one_loss.item()) / max(
            abs(one_loss.item()), 1e-12
        )
        grad_diff, worst = gradient_difference(gradients(model), one_grads)
        torch.distributed.destroy_process_group()
        queue.put((rank, loss_diff, grad_diff, worst))
    except BaseException:
        queue.put((rank, traceback.format_exc()))


def compare(model_name, dataset, config_dict, port, stage=None):
    """``(loss diff, grad diff, worst parameter)`` of ``model_name`` over both ranks:
    the relative difference of the loss, and the largest over parameters of the
    largest gradient difference relative to that parameter's largest gradient."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    try:
        mp.spawn(
            rank_main,
            args=(model_name, dataset, config_dict, port, queue, stage),
            nprocs=WORLD,
            join=True,
        )
    except mp.ProcessExitedException:
        # a rank killed by a signal after it had put its result (seen once, under
        # load: gloo's teardown aborting, "terminate called without an active
        # exception"); a rank that died before its result still fails below
        pass
    results = []
    for _ in range(WORLD):
        if queue.empty():
            raise RuntimeError("a rank ended without its result (see its output)")
        results.append(queue.get())
    for result in results:
        if len(result) == 2:
            raise RuntimeError(f"rank {result[0]} failed:\n{result[1]}")
    loss_diff = max(r[1] for r in results)
    worst = max(results, key=lambda r: r[2])
    return loss_diff, worst[2], worst[3]


def batch_rows(loader, epochs):
    """Each batch's rows of ``loader`` over ``epochs`` passes, as lists of ``[user,
    length, target]`` (training and full-sort evaluation batches alike; lists, which
    outlive the process that sends them, where a tensor's shared memory does not)."""
    batches = []
    for _ in range(epochs):
        for batch in loader:
            interaction = batch[0] if isinstance(batch, tuple) else batch
            batches.append(
                torch.stack(
                    [
                        interaction["user_id"],
                        interaction["item_length"],
                        interaction["item_id"],
                    ],
                    dim=1,
                ).tolist()
            )
    return batches


def deal_main(rank, dataset, config_dict, port, queue, epochs=2):
    """One of the two processes: the batches of the training (``epochs`` passes),
    validation and test loaders, first of one process, then of this rank in a
    distributed run; puts ``(rank, one process's, this rank's)`` on ``queue``, or
    the error text."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.dirname(here))  # the repository, for recbole_ssl
        from recbole_ssl.config import Config
        from recbole_ssl.utils import create_dataset, data_preparation

        torch.set_num_threads(1)
        sys.argv = sys.argv[:1]
        dealt = []
        for distributed in (False, True):
            settings = dict(config_dict, state="ERROR")
            if distributed:
                settings.update(
                    local_rank=rank,
                    world_size=WORLD,
                    nproc=WORLD,
                    offset=0,
                    ip="127.0.0.1",
                    port=str(port),
                )
            config = Config("SASRec", dataset, config_dict=settings)
            loaders = data_preparation(config, create_dataset(config))
            dealt.append(
                [batch_rows(loaders[0], epochs)]
                + [batch_rows(loader, 1) for loader in loaders[1:]]
            )
        torch.distributed.destroy_process_group()
        queue.put((rank, *dealt))
    except BaseException:
        queue.put((rank, traceback.format_exc()))


def deal(dataset, config_dict, port, epochs=2):
    """``(one process's batches, [rank 0's batches, rank 1's])``, each a list of the
    training, validation and test loaders' batches (see :func:`deal_main`)."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(
        deal_main,
        args=(dataset, config_dict, port, queue, epochs),
        nprocs=WORLD,
        join=True,
    )
    results = sorted((queue.get() for _ in range(WORLD)), key=lambda r: r[0])
    for result in results:
        if len(result) == 2:
            raise RuntimeError(f"rank {result[0]} failed:\n{result[1]}")
    return results[0][1], [result[2] for result in results]
