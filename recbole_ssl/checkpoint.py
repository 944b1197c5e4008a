"""recbole_ssl.checkpoint: checkpoint files, written atomically and read with checks.

Two kinds of checkpoint come out of a training (see :mod:`recbole_ssl.trainer.trainer`):
RecBole's, of the best epoch (``<checkpoint_dir>/<model>-<time>.pth``), and the run's
``last`` one beside it (``...-last.pth``), which holds everything a resumed run needs.
Both are written to a temporary file that then replaces the old one, so a run killed
while saving leaves the previous complete file, never half of a new one.

Below the models and trainers: it imports only the plugin's ground floor.
"""

import io
import os

import torch

from recbole_ssl.distributed import broadcast_object, process_group
from recbole_ssl.errors import ConfigError
from recbole_ssl.record import write_atomic

LAST = "last"  # the ``kind`` of a run's last checkpoint


def last_checkpoint_file(saved_model_file):
    """``saved/SASRec-<time>.pth`` -> ``saved/SASRec-<time>-last.pth``."""
    root, ext = os.path.splitext(saved_model_file)
    return f"{root}-{LAST}{ext or '.pth'}"


def save_checkpoint(state, path):
    """``torch.save(state)`` to ``path`` atomically (write, then rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue(), mode="wb")


def load_checkpoint(path, key, device="cpu"):
    """The checkpoint at ``path`` (plain types only: ``weights_only=True``).

    Raises:
        ConfigError: naming ``key`` (the setting that gave the path) when the file is
            missing or is not a checkpoint of the plugin's trainers.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{key}: checkpoint file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise ConfigError(
            f"{key}: {path} is not a checkpoint saved by recbole_ssl "
            f"({type(e).__name__} while reading it)"
        ) from None
    if not isinstance(checkpoint, dict) or not {"config", "state_dict"} <= set(
        checkpoint
    ):
        raise ConfigError(
            f"{key}: {path} is not a checkpoint saved by recbole_ssl "
            "(no 'config' and 'state_dict')"
        )
    return checkpoint


def load_from_rank0(path, key):
    """:func:`load_checkpoint` (on the CPU) by rank 0 alone, sent to every rank.

    Rank 0 writes the checkpoints of a distributed run, on its own machine; ranks on
    other machines need no copy of the file. An error reading it is raised on every
    rank. Outside a distributed run: :func:`load_checkpoint`.
    """
    group = process_group()
    if group is None:
        return load_checkpoint(path, key)
    checkpoint = error = None
    if group[0] == 0:
        try:
            checkpoint = load_checkpoint(path, key)
        except ConfigError as e:
            error = str(e)
    checkpoint, error = broadcast_object((checkpoint, error))
    if error is not None:
        raise ConfigError(error)
    return checkpoint
