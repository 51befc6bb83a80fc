"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python containers: the model state, optimiser /
scheduler / grad-scaler states, epoch and best metric, RNG states (as tensors and lists), and
``resolved_workflow`` (the resolved config as JSON-compatible data), label names and versions, so
:meth:`Predictor.from_run` needs nothing else. Loading, the file names and ``versions`` live in
:mod:`medseg.run_folder` (inference uses them too); they are re-exported here.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.io.atomic import atomic_path
from medseg.run_folder import BEST, CHECKPOINT_SCHEMA_VERSION, LAST, load_checkpoint, versions
from medseg.types import PathLike

__all__ = [
    "BEST",
    "LAST",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "versions",
]


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
