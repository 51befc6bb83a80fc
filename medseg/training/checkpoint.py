"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python containers: the model state, optimiser /
scheduler / grad-scaler states, epoch and best metric, RNG states (as tensors and lists), and
``resolved_workflow`` (the resolved config as JSON-compatible data), label names and versions, so
:meth:`Predictor.from_run` needs nothing else.
"""

from __future__ import annotations

import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg._version import __version__
from medseg.errors import CheckpointError
from medseg.io.atomic import atomic_path
from medseg.types import PathLike

CHECKPOINT_SCHEMA_VERSION = 1
LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"


def versions() -> dict[str, str]:
    """Versions recorded in checkpoints and run reports."""
    import monai

    found = {
        "medseg": __version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    return {k: str(v) for k, v in found.items()}  # plain str: weights-only loading


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as weights-only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
            "kind": str(kind),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states saved by :func:`rng_state`."""
    random.setstate((state["python_version"], tuple(state["python"]), None))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: PathLike, payload: dict[str, Any]) -> Path:
    """Save ``payload`` (plus schema version and versions) atomically."""
    target = Path(path)
    data = {"schema_version": CHECKPOINT_SCHEMA_VERSION, "versions": versions(), **payload}
    with atomic_path(target) as tmp:
        torch.save(data, tmp)
    return target


def load_checkpoint(path: PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (never unpickles arbitrary objects).

    Raises:
        CheckpointError: missing, corrupt or not a medseg checkpoint.
    """
    location = Path(path)
    if not location.is_file():
        raise CheckpointError("checkpoint does not exist", path=location)
    try:
        data = torch.load(location, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(
            f"cannot load checkpoint: {str(err).splitlines()[0]}", path=location
        ) from err
    if not isinstance(data, dict) or data.get("schema_version") != CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            "not a medseg checkpoint (schema_version missing or unknown)", path=location
        )
    return data
