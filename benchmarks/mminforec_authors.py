"""The authors' MMInfoRec trained to its end on Beauty, resumable, tested under their
protocol and this plugin's.

    python benchmarks/mminforec_authors.py --authors=PATH --state=FILE
        [--hours H] [--seed S] [--epochs N] [--data_name Beauty]

``PATH`` is a checkout of github.com/RuihongQiu/MMInfoRec (its ``*.py`` and
``data/Beauty.txt``, ``data/Beauty_item2attributes.json``). Their code is imported from
it and run unchanged: their argument parser read with ``beauty.sh``'s arguments (as
:data:`BEAUTY_SH` writes them), ``get_user_seqs``, ``MMInfoRecDataset`` and
``collate_fn``, ``MMInfoRecModel``, ``MMInfoRecTrainer``'s ``train``/``valid``/``test``,
their ``StepLR`` and their ``EarlyStopping`` on validation HR@5, NDCG@5 and HR@10
(any of the three rising counts as progress; patience 10), as their
``run_mminforec.py`` drives them. What this script adds:

* a seed (their ``set_seed``, which their script leaves commented out), so that a run
  can be repeated; and the CPU (their ``--no_cuda``), this machine's;
* resumption: after every epoch it writes ``FILE`` (model, optimizer, scheduler,
  early-stopping state, random states and every epoch's figures; written to a
  temporary file, then renamed), and a run started with an existing ``FILE`` goes on
  from there. ``--hours`` stops it, between epochs, before an epoch that would end
  past that many hours (a session's limit); their best model is ``FILE.best.pt``;
* at the end, the best model tested twice: with their code (the user's earlier items
  scored 0, not excluded; the padding item 0 ranked like any item), and under this
  plugin's protocol (earlier items and the padding item excluded, as RecBole's
  full-sort evaluation does), on the validation and the test split. A tie with the
  target counts against it (a collapsed model, all scores equal, ranks the target
  last, not first).

It prints one line per epoch and, at the end, both tests. For the results page
(issue 21, part 5): what the MMInfoRec paper's Table II figure is under the code that
produced it, on this machine, next to this plugin's preset.
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import authors_code  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from authors_code import save_state  # noqa: E402
from bench_timing import machine_line  # noqa: E402

from recbole_ssl.randomness import global_states, set_global_states  # noqa: E402

# their beauty.sh, word for word but for the program name ("--epoch=50": argparse reads
# it as --epochs)
BEAUTY_SH = (
    "--lr=0.001 --weight_decay=1e-4 --pred_step=1 --tau=0.3 --data_name=Beauty "
    "--num_hidden_layers=2 --num_attention_heads=2 --attention_probs_dropout_prob=0.5 "
    "--hidden_dropout_prob=0.5 --dc_s=1 --dc=1 --num_hidden_layers_gru=1 --mem=64 "
    "--mil=4 --epoch=50 --loss_fuse_dropout_prob=0.5"
).split()
METRICS = ("hit@5", "ndcg@5", "hit@10", "ndcg@10", "hit@20", "ndcg@20")
PATIENCE = 10  # their run_mminforec.py: EarlyStopping(..., patience=10)


def import_authors(path):
    """Their modules and their parser (``run_mminforec`` builds it inside ``main()``
    and calls ``main()`` on import: stopped at ``parse_args``)."""
    return authors_code.import_authors(
        path,
        "run_mminforec",
        ("dataset", "model", "trainer", "utils"),
        "mminforec_authors.py",
    )


def build(path, argv, state_file, seed):
    """Their data, model, trainer and scheduler, set up as their ``main()`` does, their
    ``set_seed(seed)`` first."""
    from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

    modules, parser = import_authors(path)
    dataset, model, trainer, utils = (
        modules[n] for n in ("dataset", "model", "trainer", "utils")
    )
    authors_code.quiet_progress(trainer)
    args = parser.parse_args(argv)
    utils.set_seed(seed)
    args.data_file, attributes = authors_code.data_files(
        path, args.data_name, "mminforec_authors.py"
    )
    args.cuda_condition = False
    args.no_cuda = True
    user_seq, max_item, valid_matrix, test_matrix = utils.get_user_seqs(args.data_file)
    item2attribute, attribute_size = utils.get_item2attribute_json(attributes)
    args.item_size = max_item + 1
    args.attribute_size = attribute_size + 1
    args.log_dir = os.path.dirname(os.path.abspath(state_file))
    args.item2attribute = item2attribute
    args.max_att_num = max(len(a) for a in item2attribute.values())
    args.train_matrix = valid_matrix
    args.checkpoint_path = state_file + ".best.pt"

    def loader(data_type, sampler):
        data = dataset.MMInfoRecDataset(
            args, user_seq, args.max_att_num, data_type=data_type
        )
        return DataLoader(
            data,
            sampler=sampler(data),
            batch_size=args.batch_size,
            collate_fn=dataset.collate_fn,
        )

    train = loader("train", RandomSampler)
    valid = loader("valid", SequentialSampler)
    test = loader("test", SequentialSampler)
    net = model.MMInfoRecModel(args=args)
    their = trainer.MMInfoRecTrainer(net, train, valid, test, args)
    scheduler = torch.optim.lr_scheduler.StepLR(
        their.optim, step_size=args.dc_s, gamma=args.dc
    )
    stopping = utils.EarlyStopping(
        args.checkpoint_path, patience=PATIENCE, verbose=True
    )
    return args, net, their, scheduler, stopping, (valid_matrix, test_matrix), utils


def same_run(argv):
    """What a resumed run must share with its start: all but ``--epochs``."""
    return [a for a in argv if not a.startswith("--epochs=")]


@torch.no_grad()
def our_protocol(net, their, loader, matrix):
    """HR/NDCG at 5, 10, 20 with the user's earlier items (``matrix``) and the padding
    item excluded from the ranking, their model's scores otherwise (``predict_full_att``
    over ``all_fused_embedding``)."""
    net.eval()
    net.cal_test_emb()
    ranks = []
    for batch in loader:
        users, answers = batch[0], batch[1]
        scores = their.predict_full_att(net.finetune(batch, flag="test"))
        seen = torch.from_numpy(matrix[users.numpy()].toarray() > 0)
        scores = scores.masked_fill(seen, -math.inf)
        scores[:, 0] = -math.inf
        target = scores.gather(1, answers[:, None])
        ranks.append((scores >= target).sum(1) - 1)  # ties against the target
    ranks = torch.cat(ranks).double()
    out = {}
    for k in (5, 10, 20):
        hit = ranks < k
        out[f"hit@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = (
            torch.where(hit, 1.0 / torch.log2(ranks + 2), 0.0).mean().item()
        )
    return out


def train_epoch(net, their, epoch):
    """Their ``train(epoch)``; returns each batch's loss (their iteration prints only
    the epoch's mean)."""
    losses = []
    finetune = net.finetune

    def recorded(batch, flag):
        out = finetune(batch, flag)
        if flag == "train":
            losses.append(out.item())
        return out

    net.finetune = recorded
    try:
        their.train(epoch)
    finally:
        del net.finetune  # their method again
    return losses


def line(figures):
    return "  ".join(f"{m} {figures[m]:.4f}" for m in METRICS)


def main():
    parser = authors_code.run_parser(__doc__.split("\n")[0], "RuihongQiu/MMInfoRec")
    parser.add_argument("--epochs", type=int, default=None, help="beauty.sh: 50")
    parser.add_argument("--data_name", default=None, help="beauty.sh: Beauty")
    options = parser.parse_args()
    argv = list(BEAUTY_SH)
    if options.epochs is not None:
        argv.append(f"--epochs={options.epochs}")
    if options.data_name is not None:
        argv.append(f"--data_name={options.data_name}")
    started = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(options.state)), exist_ok=True)
    args, net, their, scheduler, stopping, matrices, utils = build(
        options.authors, argv, options.state, options.seed
    )
    flushed = authors_code.flush_denormal(options)
    print(
        f"# their MMInfoRec, {args.data_name}, seed {options.seed}; {machine_line()}{flushed}"
    )
    print(f"# beauty.sh: {' '.join(argv)}")
    history, start = [], 0
    if os.path.isfile(options.state):
        state = torch.load(options.state, weights_only=False)
        if same_run(state["argv"]) != same_run(argv) or state["seed"] != options.seed:
            sys.exit(
                f"mminforec_authors.py: --state: {options.state} was run with seed "
                f"{state['seed']} and {' '.join(state['argv'])}; resume it with those"
            )
        net.load_state_dict(state["model"])
        their.optim.load_state_dict(state["optim"])
        scheduler.load_state_dict(state["scheduler"])
        for key, value in state["stopping"].items():
            setattr(stopping, key, value)
        set_global_states(state["random"])
        history, start = state["history"], state["epoch"] + 1
        print(f"# resumed from {options.state} after epoch {state['epoch']}")
    print("epoch  seconds  train loss  validation (theirs: earlier items scored 0)")
    for row in history:
        print(
            f"{row['epoch']:5d}  {row['seconds']:7.1f}  {row['loss']:10.4f}  {line(row['valid'])}"
        )
    last = max((row["seconds"] for row in history), default=0.0)
    for epoch in range(start, args.epochs):
        if stopping.early_stop:
            break
        if (
            options.hours is not None
            and time.time() - started + last > options.hours * 3600
        ):
            print(
                f"# stopped before epoch {epoch}: --hours {options.hours}; run again to go on"
            )
            return
        tick = time.time()
        losses = train_epoch(net, their, epoch)
        scores, _ = their.valid(epoch, full_sort=True)
        stopping(np.array(scores[0:3]), their.model)
        scheduler.step()
        last = time.time() - tick
        row = {
            "epoch": epoch,
            "seconds": last,
            "loss": float(np.mean(losses)),
            "valid": dict(zip(METRICS, map(float, scores), strict=True)),
            # their EarlyStopping saved this epoch's model
            "saved": stopping.counter == 0,
        }
        history.append(row)
        print(
            f"{epoch:5d}  {last:7.1f}  {row['loss']:10.4f}  {line(row['valid'])}",
            flush=True,
        )
        save_state(
            options.state,
            {
                "epoch": epoch,
                "argv": argv,
                "seed": options.seed,
                "model": net.state_dict(),
                "optim": their.optim.state_dict(),
                "scheduler": scheduler.state_dict(),
                "stopping": {
                    k: getattr(stopping, k)
                    for k in ("best_score", "counter", "early_stop", "score_min")
                    if hasattr(stopping, k)
                },
                "random": global_states(),
                "history": history,
            },
        )
    net.load_state_dict(torch.load(args.checkpoint_path, weights_only=False))
    best = [row["epoch"] for row in history if row["saved"]][-1]
    print(
        f"# best model: epoch {best}, {args.checkpoint_path} (their EarlyStopping's last save)"
    )
    args.train_matrix = matrices[1]
    theirs, _ = their.test(0, full_sort=True)
    print(
        f"test, theirs (earlier items scored 0)      {line(dict(zip(METRICS, theirs, strict=True)))}"
    )
    valid_ours = our_protocol(net, their, their.eval_dataloader, matrices[0])
    test_ours = our_protocol(net, their, their.test_dataloader, matrices[1])
    print(f"validation, ours (earlier items excluded)  {line(valid_ours)}")
    print(f"test, ours (earlier items excluded)        {line(test_ours)}")
    print(
        f"# {len(history)} epochs, {sum(r['seconds'] for r in history) / 3600:.1f} hours"
    )


if __name__ == "__main__":
    main()
