"""recbole_ssl.cli: the command line of ``run_recbole_ssl.py``."""

import argparse
import sys

from recbole_ssl.errors import RecBoleSSLError

EPILOG = (
    "Any other --key=value goes to RecBole's Config and overrides the YAML files, "
    "e.g. --epochs=50 --train_mode=prefix --learning_rate=0.001."
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="run_recbole_ssl.py",
        description="Train and evaluate a recbole-ssl or RecBole model.",
        epilog=EPILOG,
    )
    parser.add_argument("--model", "-m", default="SASRec", help="model name")
    parser.add_argument("--dataset", "-d", default="amazon-beauty", help="dataset name")
    parser.add_argument(
        "--config_files", default=None, help="YAML config files, space separated"
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
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv=None):
    """Run from the command line; a user error ends with one line on stderr, exit 2."""
    args = parse_args(argv)
    config_files = args.config_files.split() if args.config_files else None
    from recbole_ssl.quick_start import (  # after --help, which needs no torch
        evaluate_checkpoint,
        exit_on_sigterm,
        run,
    )

    exit_on_sigterm()

    try:
        if args.evaluate:
            evaluate_checkpoint(args.evaluate)
            return 0
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
