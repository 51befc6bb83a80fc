"""What a run folder holds, for training and inference alike (no torch at import).

A run folder (``medseg train -o RUN_DIR``) holds ``fingerprint.json``, ``resolved_workflow.yaml``
and one ``fold_K/`` per trained fold with ``checkpoint_best.pt`` (:data:`BEST`) and
``checkpoint_last.pt`` (:data:`LAST`). This module names those files, loads checkpoints safely
(``torch.load(weights_only=True)``, never arbitrary pickles), upgrades the keys older medseg
versions wrote, records library versions, and reads the process's place in a ``torchrun`` job
(:class:`DistInfo`), so neither :mod:`medseg.inference` nor :mod:`medseg.cli` needs
:mod:`medseg.training` for it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from medseg._version import __version__
from medseg.config.schema import SELECTION_METRIC
from medseg.errors import CheckpointError, ConfigError
from medseg.types import PathLike

if TYPE_CHECKING:
    import torch

__all__ = [
    "BEST",
    "CHECKPOINT_SCHEMA_VERSION",
    "LAST",
    "DistInfo",
    "checkpoint_path",
    "dist_info",
    "fold_dirs",
    "load_checkpoint",
    "versions",
]

CHECKPOINT_SCHEMA_VERSION = 1
LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
T = TypeVar("T")


def versions() -> dict[str, str]:
    """Versions recorded in checkpoints and run reports (plain ``str``: weights-only safe)."""
    import monai
    import numpy as np
    import torch

    found = {
        "medseg": __version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    return {k: str(v) for k, v in found.items()}


def _upgrade_state(state: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """Loop counters of any version with today's keys (``best_dice`` became ``best_score``)."""
    out = dict(state)
    if "best_dice" in out:
        out.setdefault("best_score", out.pop("best_dice"))
    out.setdefault("best_metric", metric)
    return out


def _selection_metric(data: Mapping[str, Any]) -> str:
    """The model-selection metric a checkpoint's workflow implies (older checkpoints)."""
    workflow = data.get("resolved_workflow")
    task = workflow.get("task") if isinstance(workflow, Mapping) else None
    kind = task.get("kind") if isinstance(task, Mapping) else None
    return SELECTION_METRIC.get(str(kind), SELECTION_METRIC["semantic"])


def load_checkpoint(path: PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (never unpickles arbitrary objects).

    Checkpoints of older medseg versions come back with today's keys: the loop counters'
    ``best_dice`` (which held the selection score, lesion F1 for Mask R-CNN runs) is returned as
    ``state["best_score"]`` with ``state["best_metric"]`` naming the metric.

    Raises:
        CheckpointError: missing, corrupt or not a medseg checkpoint.
    """
    import torch

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
    if isinstance(data.get("state"), Mapping):
        data["state"] = _upgrade_state(data["state"], _selection_metric(data))
    return data


def fold_dirs(run_dir: PathLike, folds: Sequence[int] | None = None) -> list[Path]:
    """The run's ``fold_K`` folders: those asked for, else every one, in fold order."""
    root = Path(run_dir)

    def number(path: Path) -> int:
        tail = path.name.split("_", 1)[1]
        return int(tail) if tail.isdigit() else -1

    found = sorted(root.glob("fold_*"), key=number)
    if folds is not None:
        found = [root / f"fold_{k}" for k in folds]
    return [d for d in found if d.is_dir()]


def checkpoint_path(fold_dir: PathLike, which: str = "best") -> Path:
    """``checkpoint_best.pt`` (``which="best"``, falling back to the last) or the last one.

    Raises:
        CheckpointError: the fold has no such checkpoint.
    """
    folder = Path(fold_dir)
    best, last = folder / BEST, folder / LAST
    if which == "best" and best.is_file():
        return best
    if last.is_file():
        return last
    raise CheckpointError(f"no {which} checkpoint", path=folder)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (one process without torchrun).

    Attributes:
        rank: global rank, 0 is the main process (the one that writes and talks).
        world_size: number of processes.
        local_rank: rank on this node (the CUDA device index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every ``world_size``-th item from ``rank``."""
        return list(items[self.rank :: self.world_size])


def _env_int(name: str, default: int, env: Mapping[str, str]) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError as err:
        raise ConfigError(
            f"environment variable {name}={text!r} is not an integer",
            hint="torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; unset them for one process",
        ) from err


def dist_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """Rank information from the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Raises:
        ConfigError: a variable is not an integer, or the rank is outside the world.
    """
    source = os.environ if env is None else env
    info = DistInfo(
        rank=_env_int("RANK", 0, source),
        world_size=_env_int("WORLD_SIZE", 1, source),
        local_rank=_env_int("LOCAL_RANK", 0, source),
    )
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise ConfigError(
            f"RANK={info.rank}, WORLD_SIZE={info.world_size}, LOCAL_RANK={info.local_rank} "
            "do not describe a process of a torchrun job",
            hint="expected 0 <= RANK < WORLD_SIZE",
        )
    return info
