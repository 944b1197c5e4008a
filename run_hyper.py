"""Hyper-parameter search for recbole-ssl models with RecBole's ``HyperTuning``.

    pip install -e ".[hyperopt]" -c constraints.txt
    python run_hyper.py --model=SASRec --dataset=amazon-beauty \
        --params_file=hyper.test --output_file=hyper_SASRec.result

``--params_file`` is RecBole's format, one parameter a line, e.g.
``learning_rate choice [0.001,0.0005]``. Extra ``--key=value`` reach every trial.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from any folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="run_hyper.py", description=__doc__)
    parser.add_argument("--model", "-m", default="SASRec", help="model name")
    parser.add_argument("--dataset", "-d", default="amazon-beauty", help="dataset")
    parser.add_argument(
        "--config_files",
        default=None,
        help="fixed YAML files; a shipped preset also by name (e.g. ICLRec-paper)",
    )
    parser.add_argument("--params_file", required=True, help="search space file")
    parser.add_argument("--output_file", default="hyper_example.result")
    parser.add_argument(
        "--algo", default="exhaustive", help="exhaustive, random, bayes"
    )
    parser.add_argument("--max_evals", type=int, default=100)
    parser.add_argument("--early_stop", type=int, default=10)
    args, _ = parser.parse_known_args(argv)

    try:
        import hyperopt  # noqa: F401
    except ImportError:
        sys.stderr.write(
            "run_hyper.py: error: hyperopt is not installed; "
            'pip install -e ".[hyperopt]" -c constraints.txt\n'
        )
        return 2
    from recbole.trainer import HyperTuning

    from recbole_ssl.cli import resolve_config_file
    from recbole_ssl.quick_start import exit_on_sigterm, objective_function
    from recbole_ssl.utils import RecBoleSSLError

    config_files = [resolve_config_file(f) for f in (args.config_files or "").split()]
    exit_on_sigterm()

    def objective(config_dict, config_file_list, saved=True):
        config_dict = dict(config_dict or {}, model=args.model, dataset=args.dataset)
        return objective_function(config_dict, config_file_list, saved)

    tuner = HyperTuning(
        objective,
        algo=args.algo,
        max_evals=args.max_evals,
        early_stop=args.early_stop,
        params_file=args.params_file,
        fixed_config_file_list=config_files,
    )
    try:
        tuner.run()
    except RecBoleSSLError as e:
        sys.stderr.write(f"run_hyper.py: error: {e}\n")
        return 2
    tuner.export_result(output_file=args.output_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
