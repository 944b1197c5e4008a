"""recbole_ssl.randomness: the random states a training draws from, as plain data.

A resumed run must draw exactly what the uninterrupted run would have drawn: Python's
``random``, NumPy's global generator (RecBole's negative samplers), torch's CPU and CUDA
generators (dropout, S3-Rec's masks, DSSRec's cuts) and the ``torch.Generator`` objects
that components own (the augmenter's, the item correlation's, a data loader's shuffle).
The states come out as tensors, numbers and lists, so a checkpoint holding them loads
with ``torch.load(weights_only=True)``.

Below the models and trainers: it imports nothing of the plugin.
"""

import random

import numpy as np
import torch


def global_states():
    """Python's, NumPy's and torch's global random states."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_global_states(states):
    """Restore what :func:`global_states` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = states["numpy"]
    np.random.set_state(
        (
            saved["name"],
            saved["keys"].numpy().astype(np.uint32),
            saved["pos"],
            saved["has_gauss"],
            saved["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def generator_state(generator):
    """``{"device", "state"}`` of a ``torch.Generator``; None for None (a component
    that creates and seeds its generator on first use has not used it yet)."""
    if generator is None:
        return None
    return {"device": str(generator.device), "state": generator.get_state()}


def generator_from_state(state):
    """A new ``torch.Generator`` in ``state`` (from :func:`generator_state`), or None."""
    if state is None:
        return None
    generator = torch.Generator(device=state["device"])
    generator.set_state(state["state"])
    return generator
