"""recbole_ssl.groups: test metrics of saved models by user group, as run records.

    python -m recbole_ssl.groups CHECKPOINT [CHECKPOINT ...] [--groups 5]

For each checkpoint saved by ``run_recbole_ssl.py`` (its own settings, data and split,
as ``--evaluate`` rebuilds them) every test user's target is ranked among all items
with the model's full-sort scores, history masked as in RecBole's evaluation. Users are
split by the length of their training sequence into ``--groups`` groups of equal size
(shortest first; ties in order of user id), and Hit and NDCG at the configured cut-offs
are given per group, as ICLRec's Figure 3 does for the claim that its gain concentrates
on users with short sequences. The overall figures are checked against RecBole's own
evaluation of the same checkpoint, so the ranks are the evaluator's.

Each checkpoint's result is an evaluation run record (``kind: evaluate``, ``groups``:
bounds, users and metrics per group) in ``record_dir``, next to the training records.
A single-process training run records the same ``groups`` of its tested model itself
(``eval_groups``, 5 by default), so no checkpoint needs keeping for them.
"""

import argparse
import os
import shlex
import sys

from recbole_ssl.errors import RecBoleSSLError
from recbole_ssl.trainer.user_groups import disagreement, group_metrics


def evaluate_groups(path, n_groups=5, command=None):
    """Rank the test targets of checkpoint ``path`` and write its evaluation record
    with the group metrics (``command``: the command line to record, where it is not
    ``sys.argv``); returns ``(config, groups, overall, recbole)``."""
    from recbole_ssl.quick_start import load_data_and_model
    from recbole_ssl.record import recording
    from recbole_ssl.utils import get_trainer

    config, model, _, _, _, test_data = load_data_and_model(
        path, {"show_progress": False}
    )
    groups, overall = group_metrics(model, test_data, n_groups, list(config["topk"]))
    with recording(config, "evaluate", "groups", config.log_file) as record:
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        recbole = trainer.evaluate(test_data, load_best_model=False)
        problem = disagreement(overall, recbole)
        if problem:
            raise RuntimeError(f"groups: {problem}")
        if record is not None:
            if command:
                record.data["command"] = command
            record.data["groups"] = {"by": "train_length", "groups": groups}
            record.finish(None, recbole, checkpoint=path)
    return config, groups, overall, recbole


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recbole_ssl.groups", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--groups", type=int, default=5)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    command = shlex.join(
        [os.path.basename(sys.executable), "-m", "recbole_ssl.groups", *argv]
    )
    sys.argv = sys.argv[:1]  # RecBole's Config reads the command line: not ours
    if args.groups < 1:
        parser.error("--groups must be an integer >= 1")
    try:
        for path in args.checkpoints:
            config, groups, overall, _ = evaluate_groups(path, args.groups, command)
            print(
                f"{path} ({config['model']}): NDCG@20 {overall.get('ndcg@20', 0):.4f}"
            )
            for g in groups:
                print(
                    f"  length {g['min_length']}-{g['max_length']} ({g['users']} users):"
                    + "".join(
                        f" {m} {v:.4f}" for m, v in g["metrics"].items() if "@20" in m
                    )
                )
    except RecBoleSSLError as e:
        sys.stderr.write(f"python -m recbole_ssl.groups: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
