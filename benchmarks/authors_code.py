"""Running an author's reference code unchanged, resumably: what the ``*_authors.py``
benchmarks share.

Their scripts build their argument parser inside ``main()`` and call ``main()`` on
import; :func:`import_authors` imports such a script, stops it at ``parse_args`` and
hands back the parser and their modules. A run that stops between epochs keeps its
weights and optimizer beside the random states of Python, NumPy and torch
(``recbole_ssl.randomness.global_states``), written whole or not at all
(:func:`save_state`).
"""

import argparse
import functools
import importlib
import os
import sys
import types

import torch


class _Parsed(Exception):
    """Raised from inside their ``main()`` once its parser is built."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def import_authors(path, script, modules, prog):
    """``({name: module}, parser)``: their ``modules`` imported from the checkout
    ``path``, and the parser their ``script`` (a module name) builds. A checkout
    without the script ends ``prog`` in one line naming ``--authors``."""
    if not os.path.isfile(os.path.join(path, script + ".py")):
        sys.exit(f"{prog}: --authors: no {script}.py under {path!r}")
    sys.path.insert(0, os.path.abspath(path))
    original = argparse.ArgumentParser.parse_args

    def stop(parser, *args, **kwargs):
        raise _Parsed(parser)

    argparse.ArgumentParser.parse_args = stop
    try:
        importlib.import_module(script)
    except _Parsed as parsed:
        parser = parsed.parser
    else:
        sys.exit(f"{prog}: their {script}.py built no parser")
    finally:
        argparse.ArgumentParser.parse_args = original
    return {name: importlib.import_module(name) for name in modules}, parser


def run_parser(description, repository):
    """The options every ``*_authors.py`` run takes: ``--authors`` (a checkout of
    ``repository``), ``--state``, ``--hours`` and ``--seed``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--authors", required=True, help=f"a checkout of {repository}")
    parser.add_argument(
        "--state", required=True, help="the run's state file (resumed if it exists)"
    )
    parser.add_argument(
        "--hours", type=float, default=None, help="stop before passing this"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--flush_denormal",
        action="store_true",
        help="flush subnormal floats to zero (torch.set_flush_denormal): see "
        "flush_denormal()",
    )
    return parser


def flush_denormal(options):
    """``--flush_denormal``: subnormal floats (below 1.2e-38 in magnitude) read and
    written as zero, which is what a GPU's fast path does. On an x86 CPU every
    operation on a subnormal is many times slower, and weights that receive no
    gradient but weight decay (their L2 term, added to the gradient) shrink through
    the subnormal range: the MMInfoRec authors' run on Beauty had 38% of one attention
    layer's weights subnormal after 21 epochs, and its epochs took 112 s at epoch 14
    and 323 s at epoch 20 on the same two threads. Returns the header's words for it:
    a value that small is zero to every figure these runs report, but a run that
    resumes with it is not bit for bit the run without it."""
    if options.flush_denormal:
        torch.set_flush_denormal(True)
        return "; subnormal floats flushed to zero"
    return ""


def quiet_progress(module):
    """Their progress bars in ``module`` off: one line per batch in a log (a bar's
    length stays)."""
    import tqdm

    module.tqdm = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))


def data_files(path, data_name, prog):
    """Their ``data/<data_name>.txt`` and ``data/<data_name>_item2attributes.json``
    under the checkout ``path``; a missing one ends ``prog`` in one line."""
    data_dir = os.path.join(os.path.abspath(path), "data")
    files = (
        os.path.join(data_dir, data_name + ".txt"),
        os.path.join(data_dir, data_name + "_item2attributes.json"),
    )
    for name in files:
        if not os.path.isfile(name):
            sys.exit(f"{prog}: --authors: no {name}")
    return files


def save_state(path, state):
    """``state`` to ``path`` whole or not at all."""
    partial = path + ".partial"
    torch.save(state, partial)
    os.replace(partial, path)
