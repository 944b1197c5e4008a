"""recbole_ssl.cli: the command line of ``run_recbole_ssl.py``."""

import argparse
import os
import sys

from recbole_ssl.errors import RecBoleSSLError, check_integer
from recbole_ssl.paths import PRESETS_DIR

EPILOG = (
    "Any other --key=value goes to RecBole's Config and overrides the YAML files, "
    "e.g. --epochs=50 --train_mode=prefix --learning_rate=0.001. A key that no "
    "configuration knows is an error; declare a key of your own in a YAML file given "
    "with --config_files."
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole_ssl.py",
        description="Train and evaluate a recbole-ssl or RecBole model.",
        epilog=EPILOG,
    )
    parser.add_argument("--model", "-m", default="SASRec", help="model name")
    parser.add_argument("--dataset", "-d", default="amazon-beauty", help="dataset name")
    parser.add_argument(
        "--config_files",
        default=None,
        help="YAML config files, space separated; a shipped preset also by its name, "
        "e.g. ICLRec-paper",
    )
    parser.add_argument(
        "--nproc", type=int, default=1, help="processes (distributed mode if > 1)"
    )
    parser.add_argument(
        "--evaluate",
        default=None,
        metavar="MODEL_FILE",
        help="evaluate this saved checkpoint instead of training (other --key=value "
        "settings, e.g. --eval_args, override the checkpoint's)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="LAST_CHECKPOINT",
        help="continue the run whose last checkpoint (saved/<model>-<time>-last.pth, "
        "written every epoch) this is, exactly as if it had not stopped; its settings "
        "come from the checkpoint (other --key=value settings override them)",
    )
    parser.add_argument("--ip", default="localhost", help="address of rank 0")
    parser.add_argument("--port", default="5678", help="port of rank 0")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes")
    parser.add_argument(
        "--group_offset", type=int, default=0, help="rank offset of this machine"
    )
    return parser


def parse_args(argv=None):
    """The options above; ``settings``: the other arguments (``--key=value``)."""
    args, extra = build_parser().parse_known_args(argv)
    args.settings = extra
    return args


def option_names():
    """The command line's own options (``model``, ``nproc``, ...): not config keys."""
    return [a.dest for a in build_parser()._actions if a.dest != "help"]


def check_settings(extra):
    """Every argument the options above do not take must be ``--key=value`` (what
    RecBole reads); RecBole ignores any other with only a warning."""
    for arg in extra:
        if not arg.startswith("--") or len(arg[2:].split("=")) != 2:
            raise RecBoleSSLError(
                f"argument {arg!r} is not a setting: write each setting as "
                "--key=value, one '=' and no spaces around it"
            )


def resolve_config_file(path):
    """``path``, or the shipped preset it names where no such file exists
    (``ICLRec-paper`` or ``ICLRec-paper.yaml``), so that an installed package's
    presets need no path."""
    if os.path.exists(path) or os.sep in path:
        return path
    name = path if path.endswith(".yaml") else f"{path}.yaml"
    preset = os.path.join(PRESETS_DIR, name)
    return preset if os.path.isfile(preset) else path


def main(argv=None):
    """Run from the command line; a user error ends with one line on stderr, exit 2."""
    args = parse_args(argv)
    config_files = (
        [resolve_config_file(f) for f in args.config_files.split()]
        if args.config_files
        else None
    )
    from recbole_ssl.quick_start import (  # after --help, which needs no torch
        check_command_line,
        evaluate_checkpoint,
        exit_on_sigterm,
        run,
    )

    exit_on_sigterm()

    try:
        check_settings(args.settings)
        if args.evaluate:
            check_command_line(
                None, None, config_files, option_names(), evaluate=args.evaluate
            )
            evaluate_checkpoint(args.evaluate, config_file_list=config_files)
            return 0
        check_integer("nproc", args.nproc, 1)
        check_command_line(
            args.model, args.dataset, config_files, option_names(), args.resume
        )
        run(
            args.model,
            args.dataset,
            config_file_list=config_files,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
            resume=args.resume,
        )
    except RecBoleSSLError as e:
        sys.stderr.write(f"run_recbole_ssl.py: error: {e}\n")
        return 2
    return 0
