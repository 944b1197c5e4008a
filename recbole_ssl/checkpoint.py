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
