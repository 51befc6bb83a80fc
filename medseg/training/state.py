"""Training state that survives a restart: what goes into a checkpoint and back."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import CheckpointError
from medseg.io.atomic import atomic_path
from medseg.run_folder import BEST, LAST, load_checkpoint
from medseg.training.checkpoint import rng_state, save_checkpoint, set_rng_state

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Counters of the loop (plain values, stored in checkpoints).

    ``pending`` holds the ``metrics.jsonl`` row of an epoch whose training is done and saved
    but whose validation is not (yet): ``checkpoint_last.pt`` is written before validating, so a
    failed validation loses no training, and ``--resume`` validates that epoch first.
    """

    epoch: int = 0  # epochs completed
    best_score: float = -1.0  # the best validation score so far (``best_metric``)
    best_metric: str = "mean_dice"  # its metric: mean_dice (U-Net) or lesion_f1 (Mask R-CNN)
    best_epoch: int = 0
    bad_validations: int = 0
    seconds: float = 0.0
    pending: dict[str, Any] | None = None


@dataclass
class Components:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def payload(
    resolved: ResolvedWorkflow, parts: Components, state: LoopState, fold: int
) -> dict[str, Any]:
    """Everything a checkpoint stores (weights-only-safe types)."""
    return {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "state": asdict(state),
        "rng": rng_state(),
        "fold": fold,
        "resolved_workflow": resolved.model_dump(mode="json"),
        "labels": dict(resolved.plan.labels),
        "lesion_labels": list(resolved.plan.lesion_labels),
    }


def save_state(
    fold_dir: Path,
    resolved: ResolvedWorkflow,
    parts: Components,
    state: LoopState,
    fold: int,
    *,
    best: bool,
) -> None:
    """Write ``checkpoint_last.pt`` (and copy it to ``checkpoint_best.pt`` when ``best``)."""
    last = save_checkpoint(fold_dir / LAST, payload(resolved, parts, state, fold))
    if best:
        with atomic_path(fold_dir / BEST) as tmp:
            shutil.copyfile(last, tmp)


def restore_state(fold_dir: Path, parts: Components, device: torch.device) -> LoopState:
    """Load ``checkpoint_last.pt`` into the components; returns the loop counters."""
    path = fold_dir / LAST
    if not path.is_file():
        raise CheckpointError(
            "nothing to resume: no checkpoint_last.pt", path=fold_dir, hint="train without --resume"
        )
    data = load_checkpoint(path, map_location=device)
    try:
        parts.model.load_state_dict(data["model"])
        parts.optimizer.load_state_dict(data["optimizer"])
        parts.scheduler.load_state_dict(data["scheduler"])
        parts.scaler.load_state_dict(data["scaler"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint does not match this workflow's network: {err}", path=path
        ) from err
    set_rng_state(
        {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in data["rng"].items()}
    )
    state = LoopState(**data["state"])
    logger.info(
        "resuming %s after epoch %d (best %s %.4f at epoch %d)",
        fold_dir.name,
        state.epoch,
        state.best_metric,
        state.best_score,
        state.best_epoch,
    )
    return state
