"""The S3-Rec authors' pretraining on Beauty, run unchanged and resumably.

    python benchmarks/s3rec_authors_pretrain.py --authors=PATH --state=FILE
        [--epochs N] [--hours H] [--seed S] [--data_name Beauty]

``PATH`` is a checkout of github.com/aHuiWang/CIKM2020-S3Rec (its ``*.py`` and
``data/Beauty.txt``, ``data/Beauty_item2attributes.json``). Their code is imported from
it and run as their ``run_pretrain.py`` runs it: their argument parser with its
defaults (what their README runs: ``python run_pretrain.py --data_name Beauty``),
``get_user_seqs_long``, ``get_item2attribute_json``, ``S3RecModel`` and, every epoch, a
new ``PretrainDataset`` (every prefix of every user's training items) in a
``RandomSampler`` at their pretraining batch (100), through
``PretrainTrainer.pretrain``. What this script adds:

* the seed given (their ``set_seed``; their default is 42) and the CPU (their
  ``--no_cuda``), this machine's;
* ``--epochs``: their ``--pre_epochs`` (default 300; their README fine-tunes from 150);
* resumption: after every epoch it writes ``FILE`` (weights, optimizer, random states
  and each epoch's seconds; a temporary file, then renamed), and a run started with an
  existing ``FILE`` goes on from there. ``--hours`` stops it, between epochs, before an
  epoch that would end past that many hours (a session's limit);
* their checkpoint, ``<data_name>-epochs-<n>.pt`` beside ``FILE`` (their
  ``trainer.save``), every 10 epochs as theirs and after the last epoch.
  ``benchmarks/s3rec_authors_weights.py --released=<it>`` turns it into a
  ``pre_model_path`` for this plugin's fine-tuning.

For the results page (issue 21, part 5): whether their pretraining after as many epochs
as this plugin's prefix-row run (20, where the paper's Fig. 5 puts most of the gain)
already gives what their released 150-epoch weights give, which separates how long
their pretraining ran from how its objectives are written.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import authors_code  # noqa: E402
import torch  # noqa: E402
from authors_code import save_state  # noqa: E402
from bench_timing import machine_line  # noqa: E402

from recbole_ssl.randomness import global_states, set_global_states  # noqa: E402

PROG = "s3rec_authors_pretrain.py"
SAVE_EVERY = 10  # their run_pretrain.py: a checkpoint after every 10th epoch


def build(path, argv, state_file, seed):
    """Their data, model and trainer, set up as their ``main()`` does, their
    ``set_seed(seed)`` first."""
    modules, parser = authors_code.import_authors(
        path, "run_pretrain", ("datasets", "models", "trainers", "utils"), PROG
    )
    datasets, models, trainers, utils = (
        modules[n] for n in ("datasets", "models", "trainers", "utils")
    )
    authors_code.quiet_progress(trainers)
    args = parser.parse_args(argv)
    utils.set_seed(seed)
    args.data_file, attributes = authors_code.data_files(path, args.data_name, PROG)
    args.no_cuda = True
    args.cuda_condition = False
    args.output_dir = os.path.dirname(os.path.abspath(state_file))
    user_seq, max_item, long_sequence = utils.get_user_seqs_long(args.data_file)
    item2attribute, attribute_size = utils.get_item2attribute_json(attributes)
    args.item_size = max_item + 2
    args.mask_id = max_item + 1
    args.attribute_size = attribute_size + 1
    args.log_file = state_file + ".log"  # their trainer appends each epoch's losses
    args.item2attribute = item2attribute
    model = models.S3RecModel(args=args)
    trainer = trainers.PretrainTrainer(model, None, None, None, args)

    def loader():
        """Their epoch's loader: a new ``PretrainDataset`` in a ``RandomSampler``."""
        from torch.utils.data import DataLoader, RandomSampler

        data = datasets.PretrainDataset(args, user_seq, long_sequence)
        return DataLoader(
            data, sampler=RandomSampler(data), batch_size=args.pre_batch_size
        )

    return args, model, trainer, loader


def main():
    parser = authors_code.run_parser(__doc__.split("\n")[0], "aHuiWang/CIKM2020-S3Rec")
    parser.add_argument("--epochs", type=int, default=None, help="theirs: 300")
    parser.add_argument("--data_name", default="Beauty")
    options = parser.parse_args()
    argv = [f"--data_name={options.data_name}"]
    if options.epochs is not None:
        argv.append(f"--pre_epochs={options.epochs}")
    started = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(options.state)), exist_ok=True)
    args, model, trainer, loader = build(
        options.authors, argv, options.state, options.seed
    )
    print(f"# their S3-Rec pretraining, {args.data_name}, seed {options.seed}")
    print(f"# {machine_line()}{authors_code.flush_denormal(options)}")
    print(f"# run_pretrain.py {' '.join(argv)} (their defaults otherwise)")
    seconds, start = [], 0
    if os.path.isfile(options.state):
        state = torch.load(options.state, weights_only=False)
        if state["data_name"] != args.data_name or state["seed"] != options.seed:
            sys.exit(
                f"{PROG}: --state: {options.state} was run with seed {state['seed']} "
                f"on {state['data_name']}; resume it with those"
            )
        model.load_state_dict(state["model"])
        trainer.optim.load_state_dict(state["optim"])
        set_global_states(state["random"])
        seconds, start = state["seconds"], state["epoch"] + 1
        print(f"# resumed from {options.state} after epoch {state['epoch']}")
    for epoch, took in enumerate(seconds):
        print(f"epoch {epoch}: {took:.1f} s")
    for epoch in range(start, args.pre_epochs):
        last = max(seconds, default=0.0)
        if (
            options.hours is not None
            and time.time() - started + last > options.hours * 3600
        ):
            print(f"# stopped before epoch {epoch}: --hours {options.hours}")
            return
        tick = time.time()
        trainer.pretrain(epoch, loader())  # prints their losses
        seconds.append(time.time() - tick)
        print(f"epoch {epoch}: {seconds[-1]:.1f} s", flush=True)
        if (epoch + 1) % SAVE_EVERY == 0 or epoch + 1 == args.pre_epochs:
            name = f"{args.data_name}-epochs-{epoch + 1}.pt"
            trainer.save(os.path.join(args.output_dir, name))
            print(f"# their checkpoint: {os.path.join(args.output_dir, name)}")
        save_state(
            options.state,
            {
                "epoch": epoch,
                "data_name": args.data_name,
                "seed": options.seed,
                "model": model.state_dict(),
                "optim": trainer.optim.state_dict(),
                "random": global_states(),
                "seconds": seconds,
            },
        )
    print(f"# {len(seconds)} epochs, {sum(seconds) / 3600:.2f} hours")


if __name__ == "__main__":
    main()
