"""``Predictor``: load a trained run once, segment volumes on their source grid.

``Predictor.from_run(run_dir)`` loads every fold's checkpoint (:mod:`medseg.run_folder`,
``weights_only``). :meth:`Predictor.predict` reads the scan, refuses one unlike the training
data, and hands it to the prediction function of the workflow's ``task.kind``
(:data:`PREDICT_FNS`): :func:`~medseg.inference.semantic.predict_semantic` for U-Nets,
:func:`~medseg.inference.instance_outputs.predict_instance_case` for Mask R-CNN. Each returns a
:class:`~medseg.inference.prediction.Prediction` on the source grid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow, TaskKind
from medseg.errors import CheckpointError, DataError
from medseg.inference.instance_outputs import predict_instance_case
from medseg.inference.prediction import Ensemble, Prediction
from medseg.inference.semantic import predict_semantic
from medseg.io.atomic import file_sha256
from medseg.io.read import VolumeRef, read_volume
from medseg.io.volume import Volume
from medseg.models.registry import build_model
from medseg.models.runtime import select_device
from medseg.run_folder import checkpoint_path, fold_dirs, load_checkpoint, versions
from medseg.text import plural
from medseg.types import PathLike

__all__ = ["PREDICT_FNS", "CheckpointInfo", "Prediction", "Predictor"]

logger = logging.getLogger(__name__)
SPACING_TOLERANCE = 8.0

PredictFn = Callable[[Ensemble, Volume | Sequence[Volume], bool | None], Prediction]
PREDICT_FNS: dict[TaskKind, PredictFn] = {
    "semantic": predict_semantic,
    "instance": predict_instance_case,
}
"""``task.kind`` -> ``(ensemble, volume or channels, tta) -> Prediction`` on the source grid."""


def check_slice_axis(resolved: ResolvedWorkflow, volume: Volume) -> None:
    """Refuse a one-slice image whose slice lies across another axis than a 2D model's.

    Raises:
        DataError: e.g. a model trained on coronal one-slice NIfTIs given an axial PNG.
    """
    from medseg.manifest.fingerprint import oriented

    shape, _ = oriented(volume)
    flat = [a for a, n in enumerate(shape) if n == 1]
    if resolved.spatial_dims == 2 and len(flat) == 1 and flat[0] != resolved.slice_axis:
        raise DataError(
            f"the image has one slice across axis {flat[0]} (after orientation to "
            f"{resolved.preprocess.orientation}); this 2D model slices along axis "
            f"{resolved.slice_axis}",
            hint="give images stored like the training images (same plane)",
        )


@dataclass(frozen=True)
class CheckpointInfo:
    path: str
    sha256: str
    fold: int


def _load_fold(
    path: Path, device: torch.device, first: ResolvedWorkflow | None
) -> tuple[ResolvedWorkflow, nn.Module, CheckpointInfo]:
    """One fold's workflow and network (on ``device``, eval mode) from its checkpoint.

    Raises:
        CheckpointError: unreadable, or planned from other data than the first fold.
    """
    data = load_checkpoint(path, map_location="cpu")
    config = ResolvedWorkflow.model_validate(data["resolved_workflow"])
    if first is not None and config.plan.fingerprint_sha256 != first.plan.fingerprint_sha256:
        raise CheckpointError(
            f"{path.parent.name} was planned from other data than the first fold", path=path
        )
    model = build_model(config)
    model.load_state_dict(data["model"])
    info = CheckpointInfo(str(path), file_sha256(path), int(data.get("fold", 0)))
    return config, model.to(device).eval(), info


class Predictor:
    """Trained models of one run (one per fold) with their resolved workflow."""

    def __init__(
        self,
        resolved: ResolvedWorkflow,
        models: Sequence[nn.Module],
        *,
        device: torch.device,
        checkpoints: Sequence[CheckpointInfo],
        run_dir: Path | None = None,
    ) -> None:
        self.ensemble = Ensemble(resolved, tuple(models), device)
        self.checkpoints = list(checkpoints)
        self.run_dir = run_dir

    @property
    def resolved(self) -> ResolvedWorkflow:
        return self.ensemble.resolved

    @resolved.setter
    def resolved(self, value: ResolvedWorkflow) -> None:
        self.ensemble = replace(self.ensemble, resolved=value)

    @property
    def label_names(self) -> dict[int, str]:
        """Label value -> class name."""
        return {int(k): v for k, v in self.resolved.plan.labels.items()}

    @property
    def models(self) -> list[nn.Module]:
        return list(self.ensemble.models)

    @property
    def device(self) -> torch.device:
        return self.ensemble.device

    @classmethod
    def from_run(
        cls,
        run_dir: PathLike,
        *,
        folds: Sequence[int] | None = None,
        checkpoint: str = "best",
        device: str = "auto",
    ) -> Predictor:
        """Load every fold's checkpoint (``weights_only``); the run folder needs nothing else.

        Raises:
            CheckpointError: no checkpoints, or folds planned differently.
        """
        root = Path(run_dir)
        dirs = fold_dirs(root, folds)
        if not dirs:
            raise CheckpointError(
                "no fold_* folders with checkpoints",
                path=root,
                hint="train first: medseg train WORKFLOW.yaml",
            )
        dev = select_device(device)
        resolved: ResolvedWorkflow | None = None
        models, infos = [], []
        for fold_dir in dirs:
            config, model, info = _load_fold(checkpoint_path(fold_dir, checkpoint), dev, resolved)
            resolved = resolved or config
            models.append(model)
            infos.append(info)
        assert resolved is not None
        logger.info("loaded %s from %s on %s", plural(len(models), "model"), root, dev)
        return cls(resolved, models, device=dev, checkpoints=infos, run_dir=root)

    @property
    def provenance(self) -> dict[str, Any]:
        """Run, checkpoints (sha256), versions and device, for reports."""
        return {
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "model": {
                "name": self.resolved.model.name,
                "dims": self.resolved.task.dims,
                "workflow": self.resolved.name,
            },
            "checkpoints": [c.__dict__ for c in self.checkpoints],
            "versions": versions(),
            "device": str(self.device),
        }

    def check_compatible(self, volume: Volume) -> None:
        """Refuse scans unlike the training data (other modality, spacing off by > 8x).

        Raises:
            DataError: naming what differs; such a scan would be resampled to absurd sizes or
                segmented by a model that never saw its kind of image.
        """
        expected = self.resolved.plan.modality.upper()
        found = str(volume.meta.get("modality") or "").upper()
        if found and expected not in ("", "UNKNOWN") and found != expected:
            raise DataError(
                f"the scan's modality is {found}; this model was trained on {expected}",
                hint="use a model trained for this modality",
            )
        planned = np.asarray(self.resolved.plan.median_spacing)
        spacing = np.asarray(sorted(volume.spacing))
        ratio = np.maximum(spacing / np.sort(planned), np.sort(planned) / spacing)
        if float(ratio.max()) > SPACING_TOLERANCE:
            fmt = lambda v: " x ".join(f"{x:.3g}" for x in v)  # noqa: E731
            raise DataError(
                f"voxel spacing {fmt(volume.spacing)} mm is far from the training data's "
                f"{fmt(planned)} mm",
                hint="is this the right model for these scans?",
            )
        check_slice_axis(self.resolved, volume)

    def self_check(self) -> None:
        """Segment a blank scan of one window: a model or settings that cannot work fail here,
        before any case of a batch.

        Raises:
            CheckpointError: naming what failed.
        """
        resolved = self.resolved
        spacing = np.asarray(resolved.target_spacing, dtype=np.float64)
        if resolved.spatial_dims == 2:
            spacing[resolved.slice_axis] = resolved.plan.median_spacing[resolved.slice_axis]
        blank = Volume(
            np.zeros(resolved.volume_patch, dtype=np.float32),
            np.diag([*spacing, 1.0]),
            {"modality": resolved.plan.modality},
        )
        try:
            self.predict([blank] * len(resolved.plan.channels), tta=False)
        except Exception as err:  # whatever breaks here would break every case
            raise CheckpointError(
                f"the model cannot segment a blank scan with these settings "
                f"({type(err).__name__}: {err})",
                path=self.run_dir,
                hint="check the run folder and the options; nothing was predicted",
            ) from err

    def predict(
        self,
        source: Volume | VolumeRef | Sequence[Volume | VolumeRef],
        *,
        root: PathLike | None = None,
        tta: bool | None = None,
    ) -> Prediction:
        """Segment one scan; the label map has exactly the source's shape and affine.

        ``source`` is the scan (volume or reference), or one per input channel (model order;
        the first channel's grid is the output's). ``tta``: flip test-time augmentation (None:
        the workflow's ``infer.tta``; Mask R-CNN runs take none).
        """
        start = time.perf_counter()
        sources: list[Any] = list(source) if isinstance(source, (list, tuple)) else [source]
        volumes = [s if isinstance(s, Volume) else read_volume(s, root=root) for s in sources]
        volume = volumes[0]
        self.check_compatible(volume)
        scan = volume if len(volumes) == 1 else volumes
        prediction = PREDICT_FNS[self.resolved.task.kind](self.ensemble, scan, tta)
        if prediction.labels.shape != volume.shape:
            raise RuntimeError(f"label map {prediction.labels.shape} != source {volume.shape}")
        return replace(prediction, seconds=time.perf_counter() - start)
