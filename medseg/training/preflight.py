"""Preflight: the whole training chain once, on a small sample, before the budget is spent.

``medseg train`` runs it before preprocessing the fold's cases, on the smallest training case and
the smallest validation case (by file size; the training case stands in when there is no
validation split):

1. ``preprocess``: both cases read, oriented, resampled and normalised as training will;
2. ``train step``: one optimiser step on a batch of patches (the planned patch and batch size);
3. ``validation``: the validation case through sliding-window inference and scoring;
4. ``inversion``: the case segmented from its source files by the predictor (reading,
   preprocessing, windows, inverse transforms; a stand-in network for U-Nets, whose windows step
   3 ran) back onto its source grid;
5. ``checkpoint``: a checkpoint written and read back (``weights_only``), as ``medseg predict``
   loads it.

A failure raises :class:`PreflightError` naming the step, the case and the reason, typically
within a minute, instead of after hours of training. The run's model, optimiser and random state
are untouched: preflight works on a separate copy and restores the RNG.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import MedsegError
from medseg.io.image_files import ImageFileRef
from medseg.io.read import DicomSeriesRef
from medseg.manifest.schema import Case, Manifest
from medseg.training.checkpoint import rng_state, set_rng_state
from medseg.training.data import FoldSplit, PatchDataset, preprocess_cases
from medseg.training.state import Components, LoopState, save_state
from medseg.training.steps import build_train_step
from medseg.training.validation import validate

logger = logging.getLogger(__name__)
TrainEpoch = Callable[..., float]


class PreflightError(MedsegError):
    """A step of the preflight failed: training would have failed there later (exit code 1)."""


@dataclass
class PreflightReport:
    """Seconds per step and the cases used."""

    train_case: str
    val_case: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


def _source_paths(source: str | DicomSeriesRef | ImageFileRef) -> list[str]:
    if isinstance(source, DicomSeriesRef):
        return list(source.files)
    return [source.path if isinstance(source, ImageFileRef) else source]


def _size(path: Path) -> int:
    try:
        return (
            sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        )
    except OSError:
        return 0


def _bytes(manifest: Manifest, case: Case) -> int:
    """Size on disk of a case's images (a cheap proxy for the time to process it)."""
    return sum(
        _size(manifest.resolve(name))
        for source in case.images.values()
        for name in _source_paths(source)
    )


def smallest_case(manifest: Manifest, cases: Sequence[Case]) -> Case:
    """The case with the fewest image bytes (first of equals)."""
    return min(cases, key=lambda c: _bytes(manifest, c))


@contextmanager
def _step(report: PreflightReport, name: str, case_id: str) -> Iterator[None]:
    """Time a step; turn any exception into a :class:`PreflightError` naming step and case."""
    start = time.monotonic()
    try:
        yield
    except MedsegError as err:
        raise PreflightError(
            f"preflight {name} failed: {err.describe(with_hint=False)}",
            case_id=case_id,
            hint=err.hint or "nothing was trained; fix this and run train again",
        ) from err
    except Exception as err:  # every failure here would have stopped training later
        logger.debug("preflight %s failed on %s", name, case_id, exc_info=True)
        raise PreflightError(
            f"preflight {name} failed ({type(err).__name__}: {err})",
            case_id=case_id,
            hint="nothing was trained; run with --debug for the traceback",
        ) from err
    report.seconds[name] = round(time.monotonic() - start, 3)


def _train_step(
    parts: Components,
    item: dict[str, Any],
    resolved: ResolvedWorkflow,
    device: torch.device,
    dtype: torch.dtype | None,
    train_epoch: TrainEpoch,
) -> None:
    """One optimiser step on one batch of patches of ``item`` (planned patch and batch size)."""
    dataset = PatchDataset([item], resolved, length=resolved.batch_size, seed=resolved.train.seed)
    loader = DataLoader(dataset, batch_size=resolved.batch_size, num_workers=0)
    train_epoch(
        parts.model,
        loader,
        build_train_step(resolved),
        parts,
        device=device,
        dtype=dtype,
        grad_clip=resolved.train.grad_clip,
    )


class _Background(torch.nn.Module):
    """Stand-in network for the inversion step: background everywhere, at no cost (the real
    network already ran the same windows in the validation step)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros((x.shape[0], self.num_classes, *x.shape[2:]), device=x.device)
        logits[:, 0] = 1.0
        return logits


def _invert(
    model: torch.nn.Module, manifest: Manifest, case: Case, resolved: ResolvedWorkflow, dev: Any
) -> None:
    """Segment ``case`` from its source files with the predictor (semantic models: a stand-in
    network); the label map must come back on the source grid."""
    from medseg.inference.predictor import Predictor

    if resolved.task.kind == "semantic":
        model = _Background(resolved.num_classes)
    predictor = Predictor(resolved, [model.eval()], device=dev, checkpoints=[])
    sources = [case.images[ch] for ch in resolved.plan.channels]
    prediction = predictor.predict(sources, root=manifest.root)
    source = manifest.read_image(case, resolved.plan.channels[0])
    if prediction.labels.shape != source.shape or not np.allclose(
        prediction.labels.affine, source.affine, atol=1e-3
    ):
        raise RuntimeError(
            f"the label map {prediction.labels.shape} is not on the source grid {source.shape}"
        )


def _checkpoint_round_trip(
    parts: Components, resolved: ResolvedWorkflow, fold: int, device: Any
) -> None:
    """Write a checkpoint as training does and load it as ``medseg predict`` does."""
    from medseg.inference.predictor import Predictor

    with tempfile.TemporaryDirectory(prefix="medseg-preflight-") as tmp:
        fold_dir = Path(tmp) / f"fold_{fold}"
        fold_dir.mkdir()
        save_state(fold_dir, resolved, parts, LoopState(), fold, best=False)
        Predictor.from_run(tmp, checkpoint="last", device=str(device))


def run_preflight(
    manifest: Manifest,
    split: FoldSplit,
    resolved: ResolvedWorkflow,
    *,
    fold: int,
    device: torch.device,
    dtype: torch.dtype | None,
    build_parts: Callable[[], Components],
    train_epoch: TrainEpoch,
) -> PreflightReport:
    """Run the preflight steps (module docstring); returns their timings.

    Args:
        manifest, split, resolved, fold: what training will use.
        device, dtype: the training device and autocast dtype.
        build_parts: makes fresh model, optimiser, scheduler and scaler (discarded afterwards).
        train_epoch: the loop's epoch function (one batch is run through it).

    Raises:
        PreflightError: a step failed; names the step and the case.
    """
    train_case = smallest_case(manifest, split.train)
    val_case = smallest_case(manifest, split.val) if split.val else train_case
    report = PreflightReport(train_case.case_id, val_case.case_id)
    saved_rng = rng_state()
    try:
        with _step(report, "preprocess (training case)", train_case.case_id):
            (train_item,) = preprocess_cases(manifest, [train_case], resolved, for_training=True)
        with _step(report, "preprocess (validation case)", val_case.case_id):
            (val_item,) = preprocess_cases(manifest, [val_case], resolved, for_training=False)
        parts = build_parts()
        with _step(report, "train step", train_case.case_id):
            _train_step(parts, train_item, resolved, device, dtype, train_epoch)
        with _step(report, "validation", val_case.case_id):
            validate(parts.model, [val_item], resolved, device=device, amp_dtype=dtype)
        with _step(report, "inversion to the source grid", val_case.case_id):
            _invert(parts.model, manifest, val_case, resolved, device)
        with _step(report, "checkpoint", val_case.case_id):
            _checkpoint_round_trip(parts, resolved, fold, device)
    finally:
        set_rng_state(saved_rng)
    logger.info(
        "preflight passed in %.1f s (%s)",
        report.total_seconds,
        ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()),
    )
    return report
