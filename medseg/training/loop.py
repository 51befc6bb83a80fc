"""The training loop: a handful of functions, no trainer class.

``train`` prepares data and components, then runs ``train_one_epoch`` / ``validate`` per epoch,
writes ``metrics.jsonl`` and atomic checkpoints, and stops at the epoch budget, on early stopping
or when the time budget would be exceeded. Under ``torchrun`` it trains with DDP; only rank 0
validates and writes.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import ConfigError, MedsegError
from medseg.io.atomic import jsonable, write_json_atomic
from medseg.manifest.schema import Manifest
from medseg.models.registry import build_model
from medseg.models.runtime import amp_dtype, autocast
from medseg.run_folder import LAST
from medseg.training import distributed as ddp
from medseg.training.data import FoldSplit, PatchDataset, preprocess_cases, split_fold
from medseg.training.optim import build_optimizer, build_scheduler
from medseg.training.preflight import run_preflight
from medseg.training.state import Components, LoopState, restore_state, save_state
from medseg.training.steps import TrainStep, build_train_step
from medseg.training.validation import CaseValidationError, ValidationResult, validate
from medseg.types import PathLike

logger = logging.getLogger(__name__)
IterationCallback = Callable[[int, int, float], None]


@dataclass
class EpochStats:
    """What one epoch did (passed to ``on_epoch_end`` and written to ``metrics.jsonl``)."""

    epoch: int
    epochs: int
    train_loss: float
    lr: float
    seconds: float
    samples_per_s: float
    val: ValidationResult | None
    best: bool
    best_score: float
    train_terms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        row: dict[str, object] = {
            "epoch": self.epoch,
            "train_loss": round(self.train_loss, 6),
            "lr": self.lr,
            "seconds": round(self.seconds, 3),
            "samples_per_s": round(self.samples_per_s, 3),
        }
        row.update({name: round(value, 6) for name, value in self.train_terms.items()})
        if self.val is not None:
            row.update(
                val_dice=self.val.dice,
                val_mean_dice=self.val.mean_dice,
                val_lesion_f1=self.val.lesion_f1,
                val_score=self.val.score,
            )
        row["best"] = self.best
        return row


@dataclass
class TrainResult:
    fold_dir: Path
    epochs_run: int
    best_epoch: int
    best_score: float
    best_metric: str  # what best_score measures: mean_dice or lesion_f1
    stopped: str
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    step_fn: TrainStep,
    parts: Components,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    grad_clip: float | None,
    on_iteration: IterationCallback | None = None,
) -> float:
    """One pass over the loader; returns the mean loss (``step_fn`` computes each batch's)."""
    model.train()
    total, n = 0.0, 0
    for step, batch in enumerate(loader, start=1):
        image = batch["image"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        parts.optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = step_fn(model, image, label)
        parts.scaler.scale(loss).backward()
        if grad_clip:
            parts.scaler.unscale_(parts.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite training loss at iteration {step}")
        total, n = total + value, n + 1
        if on_iteration is not None:
            on_iteration(step, len(loader), value)
    return total / max(n, 1)


def _components(
    resolved: ResolvedWorkflow, device: torch.device, dtype: torch.dtype | None
) -> Components:
    model = build_model(resolved).to(device)
    optimizer = build_optimizer(model, resolved)
    scaler = torch.amp.GradScaler(
        device.type, enabled=dtype == torch.float16 and device.type == "cuda"
    )
    return Components(model, optimizer, build_scheduler(optimizer, resolved), scaler)


def _loader(dataset: PatchDataset, resolved: ResolvedWorkflow, device: torch.device) -> DataLoader:
    workers = int(resolved.train.num_workers)
    return DataLoader(
        dataset,
        batch_size=resolved.batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def _file_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "medseg.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("medseg").addHandler(handler)
    return handler


def _out_of_time(resolved: ResolvedWorkflow, epoch_seconds: float, started: float) -> bool:
    """Whether another epoch of ``epoch_seconds`` would overrun ``train.max_minutes``."""
    budget = resolved.train.max_minutes
    return budget is not None and (time.monotonic() - started + epoch_seconds) > budget * 60


def _should_stop(
    resolved: ResolvedWorkflow, state: LoopState, epoch_seconds: float, started: float
) -> str | None:
    patience = resolved.train.early_stopping_patience
    if patience is not None and state.bad_validations >= patience:
        return f"early stopping: no better validation score for {patience} validations"
    if _out_of_time(resolved, epoch_seconds, started):
        return f"time budget of {resolved.train.max_minutes} minutes reached"
    return None


def _validate_now(
    resolved: ResolvedWorkflow, epoch: int, epochs: int, train_seconds: float, started: float
) -> bool:
    """Validate at every ``val_interval``-th epoch and at the last one (epoch or time budget).

    ``epoch`` counts from 1. The epoch the time budget ends training on is validated too, so a
    run stopped early still selects ``checkpoint_best.pt`` by validation.
    """
    return (
        epoch % resolved.train.val_interval == 0
        or epoch == epochs
        or _out_of_time(resolved, train_seconds, started)
    )


def _update_best(state: LoopState, val: ValidationResult | None, epoch: int, has_val: bool) -> bool:
    if not has_val:  # no validation split: the last epoch is the best
        state.best_epoch, state.best_score = epoch, float("nan")
        return True
    if val is None:
        return False
    if val.score > state.best_score:
        state.best_score, state.best_epoch, state.bad_validations = val.score, epoch, 0
        return True
    state.bad_validations += 1
    return False


@dataclass
class _Job:
    """One fold's training as asked for: workflow, data, device and the caller's hooks."""

    resolved: ResolvedWorkflow
    manifest: Manifest
    fold_dir: Path
    fold: int
    resume: bool
    dev: torch.device
    info: ddp.DistInfo
    on_epoch_end: Callable[[EpochStats], None] | None
    on_iteration: IterationCallback | None
    status: Callable[[str], None]
    preflight: bool = True


@dataclass
class _Session:
    """What ``_prepare`` builds for the epoch loop."""

    parts: Components
    model: nn.Module  # ``parts.model``, DDP-wrapped when distributed
    state: LoopState
    dataset: PatchDataset
    loader: DataLoader
    step_fn: TrainStep
    val_items: list[dict[str, Any]]
    dtype: torch.dtype | None
    started: float


def train(
    resolved: ResolvedWorkflow,
    manifest: Manifest,
    run_dir: PathLike,
    *,
    fold: int = 0,
    resume: bool = False,
    device: str = "auto",
    on_epoch_end: Callable[[EpochStats], None] | None = None,
    on_iteration: IterationCallback | None = None,
    on_status: Callable[[str], None] | None = None,
    preflight: bool = True,
) -> TrainResult:
    """Train one fold; see the module docstring. Returns where the checkpoints are.

    ``preflight`` first runs the whole chain on a small sample
    (:mod:`medseg.training.preflight`).

    Raises:
        ConfigError: checkpoints exist and ``resume`` is False.
        CheckpointError: ``resume`` without a usable ``checkpoint_last.pt``.
        PreflightError: the preflight failed (nothing was trained).
    """
    info = ddp.dist_info()
    dev = ddp.select_device(device, info)
    ddp.init_distributed(info, dev)
    job = _Job(
        resolved,
        manifest,
        Path(run_dir) / f"fold_{fold}",
        fold,
        resume,
        dev,
        info,
        on_epoch_end,
        on_iteration,
        on_status or (lambda s: None),
        preflight,
    )
    try:
        return _train(job)
    finally:
        ddp.cleanup(info)


def _train(job: _Job) -> TrainResult:
    if (job.fold_dir / LAST).exists() and not job.resume:
        raise ConfigError(
            f"{job.fold_dir} already holds checkpoints",
            hint="use --resume to continue, or another output folder",
        )
    handler = None
    if job.info.is_main:
        job.fold_dir.mkdir(parents=True, exist_ok=True)
        handler = _file_logging(job.fold_dir.parent)
    try:
        return _run(job)
    finally:
        if handler is not None:
            logging.getLogger("medseg").removeHandler(handler)
            handler.close()


def _preflight(job: _Job, split: FoldSplit, dtype: torch.dtype | None) -> None:
    """The whole chain once on two cases before the budget is spent (:mod:`.preflight`)."""
    job.status("preflight: the whole chain on two cases")
    run_preflight(
        job.manifest,
        split,
        job.resolved,
        fold=job.fold,
        device=job.dev,
        dtype=dtype,
        build_parts=lambda: _components(job.resolved, job.dev, dtype),
        train_epoch=train_one_epoch,
    )


def _prepare(job: _Job) -> _Session:
    """Preprocess the fold's cases and build model, optimizer, data loader and loop state."""
    started = time.monotonic()
    resolved, info = job.resolved, job.info
    seed_everything(resolved.train.seed + info.rank)
    if job.dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    split = split_fold(job.manifest, job.fold)
    dtype = amp_dtype(resolved, job.dev)
    if job.preflight and info.is_main:
        _preflight(job, split, dtype)
    job.status(f"preprocessing {len(split.train)} training and {len(split.val)} validation cases")
    train_items = preprocess_cases(job.manifest, split.train, resolved, for_training=True)
    val_items = (
        preprocess_cases(job.manifest, split.val, resolved, for_training=False)
        if info.is_main
        else []
    )
    parts = _components(resolved, job.dev, dtype)
    state = (
        restore_state(job.fold_dir, parts, job.dev)
        if job.resume
        else LoopState(best_metric=job.resolved.selection_metric)
    )
    model: nn.Module = parts.model
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            parts.model, device_ids=[job.dev.index] if job.dev.type == "cuda" else None
        )
    length = resolved.train.iterations_per_epoch * resolved.batch_size // info.world_size
    dataset = PatchDataset(
        train_items,
        resolved,
        length=max(length, resolved.batch_size),
        seed=resolved.train.seed,
        rank=info.rank,
    )
    logger.info(
        "training fold %d on %s: %d train / %d val cases, epochs %d..%d",
        job.fold,
        job.dev,
        len(split.train),
        len(split.val),
        state.epoch + 1,
        resolved.train.epochs,
    )
    return _Session(
        parts,
        model,
        state,
        dataset,
        _loader(dataset, resolved, job.dev),
        build_train_step(resolved),
        val_items,
        dtype,
        started,
    )


def _train_epoch(job: _Job, sess: _Session, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch`` (from 0); returns its ``metrics.jsonl`` fields (no validation)."""
    resolved, info = job.resolved, job.info
    t0 = time.monotonic()
    sess.dataset.set_epoch(epoch)
    lr = sess.parts.optimizer.param_groups[0]["lr"]
    loss = train_one_epoch(
        sess.model,
        sess.loader,
        sess.step_fn,
        sess.parts,
        device=job.dev,
        dtype=sess.dtype,
        grad_clip=resolved.train.grad_clip,
        on_iteration=job.on_iteration if info.is_main else None,
    )
    loss = ddp.all_reduce_mean(loss, info, job.dev)
    sess.parts.scheduler.step()
    seconds = time.monotonic() - t0
    return {
        "train_loss": loss,
        "lr": lr,
        "seconds": seconds,
        "samples_per_s": len(sess.dataset) * info.world_size / max(seconds, 1e-9),
        "train_terms": sess.step_fn.pop_terms(),
    }


def _validate_epoch(job: _Job, sess: _Session) -> ValidationResult:
    """Validate after epoch ``sess.state.epoch``, whose checkpoint is already saved.

    Raises:
        MedsegError: validation failed; the message names the case and says how to resume.
    """
    job.status(f"validating epoch {sess.state.epoch}")
    try:
        return validate(
            sess.parts.model, sess.val_items, job.resolved, device=job.dev, amp_dtype=sess.dtype
        )
    except Exception as err:
        cause = err.describe(with_hint=False) if isinstance(err, MedsegError) else repr(err)
        raise CaseValidationError(
            f"validation after epoch {sess.state.epoch} failed: {cause}",
            case_id=getattr(err, "case_id", None),
            hint=f"the trained epochs are saved in {job.fold_dir / LAST}; fix the cause and "
            "run the same command with --resume",
        ) from err


def _finish_epoch(
    job: _Job, sess: _Session, row: dict[str, Any], val: ValidationResult | None
) -> EpochStats:
    """Best-model bookkeeping, checkpoints, ``metrics.jsonl`` and the epoch callback."""
    state, info = sess.state, job.info
    started = row.pop("validation_started", None)
    val_seconds = 0.0 if started is None else time.monotonic() - started
    state.seconds += val_seconds  # the training time is counted already
    seconds = row["seconds"] + val_seconds
    best = _update_best(state, val, state.epoch, bool(sess.val_items) or not info.is_main)
    stats = EpochStats(
        state.epoch,
        job.resolved.train.epochs,
        row["train_loss"],
        row["lr"],
        seconds,
        row["samples_per_s"],
        val,
        best,
        state.best_score,
        train_terms=row["train_terms"],
    )
    state.pending = None
    if info.is_main:
        save_state(job.fold_dir, job.resolved, sess.parts, state, job.fold, best=best)
        with open(job.fold_dir / "metrics.jsonl", "a", encoding="utf-8") as fp:
            fp.write(json.dumps(jsonable(stats.as_json())) + "\n")
        if job.on_epoch_end is not None:
            job.on_epoch_end(stats)
    return stats


def _epoch(job: _Job, sess: _Session, epoch: int) -> tuple[EpochStats, str | None]:
    """Train (and maybe validate) epoch ``epoch`` (from 0); returns its stats and a stop reason.

    When validating, ``checkpoint_last.pt`` is written first (with the epoch pending), so an
    error during validation loses no training.
    """
    resolved, info, state = job.resolved, job.info, sess.state
    row = _train_epoch(job, sess, epoch)
    state.epoch, state.seconds = epoch + 1, state.seconds + row["seconds"]
    val = None
    if sess.val_items and _validate_now(
        resolved, epoch + 1, resolved.train.epochs, row["seconds"], sess.started
    ):
        state.pending = row
        if info.is_main:
            save_state(job.fold_dir, resolved, sess.parts, state, job.fold, best=False)
        row["validation_started"] = time.monotonic()
        val = _validate_epoch(job, sess)
    stats = _finish_epoch(job, sess, row, val)
    stop = _should_stop(resolved, state, row["seconds"], sess.started) if info.is_main else None
    return stats, stop


def _resume_pending(job: _Job, sess: _Session) -> str | None:
    """Validate the epoch a failed validation left pending (``--resume``); returns a stop
    reason."""
    row = dict(sess.state.pending or {})
    logger.info("validating epoch %d, left pending by the interrupted run", sess.state.epoch)
    row["validation_started"] = time.monotonic()
    val = _validate_epoch(job, sess) if sess.val_items else None
    _finish_epoch(job, sess, row, val)
    return _should_stop(job.resolved, sess.state, row["seconds"], sess.started)


def _run(job: _Job) -> TrainResult:
    sess = _prepare(job)
    stopped = "epoch budget reached"
    stop_reason = _resume_pending(job, sess) if sess.state.pending and job.info.is_main else None
    if stop_reason is not None:
        stopped = stop_reason
    for epoch in range(sess.state.epoch, job.resolved.train.epochs if stop_reason is None else 0):
        _, stop_reason = _epoch(job, sess, epoch)
        if ddp.broadcast_flag(stop_reason is not None, job.info, job.dev):
            stopped = stop_reason or "stopped by rank 0"
            break
    state = sess.state
    if job.info.is_main:
        _write_summary(job.fold_dir, state, stopped, job.resolved.selection_metric)
    ddp.barrier(job.info)
    logger.info(
        "fold %d finished: %s; best validation score %.4f at epoch %d",
        job.fold,
        stopped,
        state.best_score,
        state.best_epoch,
    )
    return TrainResult(
        job.fold_dir,
        state.epoch,
        state.best_epoch,
        state.best_score,
        state.best_metric,
        stopped,
        time.monotonic() - sess.started,
    )


def _write_summary(fold_dir: Path, state: LoopState, stopped: str, metric: str) -> None:
    rows = [
        json.loads(line)
        for line in (fold_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    best = next((r for r in rows if r.get("epoch") == state.best_epoch), None)
    write_json_atomic(
        fold_dir / "validation" / "summary.json",
        {
            "schema_version": 1,
            "best_epoch": state.best_epoch,
            "best_score": state.best_score,
            "selection_metric": metric,
            "best": best,
            "epochs_run": state.epoch,
            "stopped": stopped,
            "train_seconds": round(state.seconds, 2),
        },
    )
