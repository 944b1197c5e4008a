"""Seconds per training epoch of CL4SRec, CoSeRec and ICLRec next to SASRec, in one run.

    python benchmarks/contrastive_speed.py [--dataset amazon-beauty] [--epochs 1]
    python benchmarks/contrastive_speed.py --models SASRec,DSSRec
    python benchmarks/contrastive_speed.py --models 'SASRec,MMInfoRec,MMInfoRec[ce_weight=0]'

Any plugin model can be listed in ``--models`` (SASRec first, for the ratios), each
optionally with config overrides in brackets, ``Name[key=value;key=value]`` (values
are read as YAML, like the command line's), so two settings of one model are timed in
the same run.

All with their YAML defaults (``sequence`` regime, CE, batch 256). CoSeRec's one-off
ItemCF-IUF table and its per-epoch hybrid refresh (Eq. 11) are timed apart from its
epochs. ICLRec's epochs include its E-step (encoding every sequence and k-means), which
is also timed alone and printed as a share of the epoch. Prints seconds per epoch (mean of --epochs timed epochs), the ratio
to SASRec, one validation pass (full sort) per model and its ratio to SASRec's, and
the process's peak resident memory while the model trained and validated (dataset
included; and peak CUDA memory on a GPU). Compare ratios from one run: this
machine's absolute times vary with its load.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import yaml  # noqa: E402
from bench_timing import (
    machine_line,
    memory_columns,
    memory_header,
    time_epochs,
)  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_ssl import utils  # noqa: E402
from recbole_ssl.config import Config  # noqa: E402

MODELS = ("SASRec", "CL4SRec", "CoSeRec", "ICLRec")


def parse_model(spec):
    """``'MMInfoRec[ce_weight=0;pred_step=2]'`` -> ``('MMInfoRec', {'ce_weight': 0, ...})``."""
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return spec, {}
    if not rest.endswith("]"):
        raise SystemExit(f"--models: {spec!r} must end with ']' (Name[key=value;...])")
    overrides = {}
    for pair in filter(None, rest[:-1].split(";")):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise SystemExit(f"--models: {pair!r} in {spec!r} is not key=value")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def measure(model_name, dataset_name, epochs, extra):
    config = Config(
        model_name,
        dataset_name,
        config_dict=dict(show_progress=False, state="WARNING", **extra),
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = utils.data_preparation(
        config, utils.create_dataset(config)
    )
    model = config.model_class(config, train_data._dataset).to(config["device"])
    trainer = utils.get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    extra_s = {}
    if getattr(model, "needs_item_correlation", False):
        start = time.perf_counter()
        trainer.build_item_correlation(train_data._dataset)
        extra_s["ItemCF-IUF table"] = time.perf_counter() - start
        start = time.perf_counter()
        trainer.refresh_item_correlation(trainer.correlation_warm_up)
        extra_s["hybrid refresh"] = time.perf_counter() - start
    if hasattr(trainer, "intent_e_step"):
        start = time.perf_counter()
        trainer.intent_e_step(train_data, trainer.intent_warm_up)
        extra_s["E-step"] = time.perf_counter() - start
    return time_epochs(trainer, train_data, valid_data, epochs), extra_s


def figure(seconds):
    """Three significant digits, never rounded to zero (tiny CI data evaluates in
    milliseconds) and never in exponent form (a long epoch prints as 890)."""
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per model")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    extra = {"data_path": args.data_path} if args.data_path else {}

    print(f"# {args.dataset}, YAML defaults, {machine_line()}")
    specs = args.models.split(",")
    width = max(10, *(len(spec) + 1 for spec in specs))
    print(
        f"{'model':<{width}}{'s/epoch':>10}{'vs SASRec':>11}{'eval s':>9}"
        f"{'vs SASRec':>11}{memory_header()}"
    )
    base = None
    for spec in specs:
        model_name, overrides = parse_model(spec)
        timing, extra_s = measure(
            model_name, args.dataset, args.epochs, dict(extra, **overrides)
        )
        epoch_s = timing.epoch_s
        base = timing if spec == "SASRec" else base
        ratio = f"{epoch_s / base.epoch_s:.2f}x" if base else "-"
        eval_ratio = f"{timing.eval_s / base.eval_s:.2f}x" if base else "-"
        print(
            f"{spec:<{width}}{figure(epoch_s):>10}{ratio:>11}{figure(timing.eval_s):>9}"
            f"{eval_ratio:>11}" + memory_columns(timing),
            flush=True,
        )
        for name, seconds in extra_s.items():
            if name == "E-step":
                share = seconds / epoch_s
                print(
                    f"  {model_name} {name}: {seconds:.2f} s ({share:.1%} of its epoch)"
                )
            else:
                print(f"  {model_name} {name}: {seconds:.2f} s (not in s/epoch)")


if __name__ == "__main__":
    main()
