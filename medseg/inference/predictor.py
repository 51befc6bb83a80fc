"""``Predictor``: load a trained run once, segment volumes on their source grid.

``predict(volume)``: training preprocessing (orientation, spacing, normalisation) ->
sliding-window inference (foreground crop, empty windows skipped, optional flip TTA) -> mean over
folds -> probabilities inverted to the source grid with MONAI's ``Invertd`` -> arg-max ->
post-processing. On CUDA probabilities accumulate on the device in half precision and only the
label map returns to the host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, Invertd
from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import CheckpointError, DataError
from medseg.inference.postprocess import postprocess
from medseg.inference.windows import (
    labels_from_probabilities,
    plain_tensor,
    predict_probabilities,
    tta_volume_axes,
    window_settings,
)
from medseg.io.atomic import file_sha256
from medseg.io.geometry import affines_close
from medseg.io.read import VolumeRef, read_volume
from medseg.io.volume import Volume
from medseg.models.registry import build_model
from medseg.training.checkpoint import BEST, LAST, load_checkpoint, versions
from medseg.training.distributed import DistInfo, select_device
from medseg.transforms.load import metatensor_like, volume_to_metatensor
from medseg.transforms.pipelines import IMAGE, channel_keys, preprocess_transforms
from medseg.types import PathLike

logger = logging.getLogger(__name__)
PRED = "pred"
SPACING_TOLERANCE = 8.0


@dataclass(frozen=True)
class CheckpointInfo:
    path: str
    sha256: str
    fold: int


@dataclass
class Prediction:
    """Result of :meth:`Predictor.predict`: the label map on the source grid.

    Mask R-CNN runs also fill ``instance_map`` (ids, source grid) and ``instances`` (one record
    per id, see :mod:`medseg.inference.instance_outputs`).
    """

    labels: Volume
    seconds: float
    instances: list[dict[str, Any]] = field(default_factory=list)
    instance_map: Volume | None = None


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


def _fold_dirs(run_dir: Path, folds: Sequence[int] | None) -> list[Path]:
    found = sorted(
        run_dir.glob("fold_*"),
        key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else -1,
    )
    if folds is not None:
        found = [run_dir / f"fold_{k}" for k in folds]
    return [d for d in found if d.is_dir()]


def _checkpoint(fold_dir: Path, which: str) -> Path:
    best, last = fold_dir / BEST, fold_dir / LAST
    if which == "best" and best.is_file():
        return best
    if last.is_file():
        return last
    raise CheckpointError(f"no {which} checkpoint", path=fold_dir)


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
        self.resolved = resolved
        self.models = list(models)
        self.device = device
        self.checkpoints = list(checkpoints)
        self.run_dir = run_dir
        self.settings = window_settings(resolved)
        self.label_names = {int(k): v for k, v in resolved.plan.labels.items()}

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
        dirs = _fold_dirs(root, folds)
        if not dirs:
            raise CheckpointError(
                "no fold_* folders with checkpoints",
                path=root,
                hint="train first: medseg train WORKFLOW.yaml",
            )
        dev = select_device(device, DistInfo())
        models, infos, resolved = [], [], None
        for fold_dir in dirs:
            path = _checkpoint(fold_dir, checkpoint)
            data = load_checkpoint(path, map_location="cpu")
            config = ResolvedWorkflow.model_validate(data["resolved_workflow"])
            if (
                resolved is not None
                and config.plan.fingerprint_sha256 != resolved.plan.fingerprint_sha256
            ):
                raise CheckpointError(
                    f"{fold_dir.name} was planned from other data than {dirs[0].name}", path=path
                )
            resolved = resolved or config
            model = build_model(config)
            model.load_state_dict(data["model"])
            models.append(model.to(dev).eval())
            infos.append(CheckpointInfo(str(path), file_sha256(path), int(data.get("fold", 0))))
        assert resolved is not None
        logger.info("loaded %d model(s) from %s on %s", len(models), root, dev)
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

    def _accumulate_dtype(self) -> torch.dtype:
        return torch.float16 if self.device.type == "cuda" else torch.float32

    @torch.no_grad()
    def probabilities(self, image: torch.Tensor, *, tta: bool | None = None) -> torch.Tensor:
        """Mean softmax over folds ``[K, *S]`` (on the device) for a preprocessed ``[C, *S]``."""
        use_tta = self.resolved.infer.tta if tta is None else tta
        axes = tta_volume_axes(self.resolved) if use_tta else []
        source = plain_tensor(image).to(self.device)
        total = None
        amp = (
            torch.autocast("cuda", dtype=torch.float16)
            if self.device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )
        with amp:
            for model in self.models:
                probs = predict_probabilities(
                    model,
                    source,
                    self.settings,
                    num_classes=self.resolved.num_classes,
                    tta_axes=axes,
                    accumulate_dtype=self._accumulate_dtype(),
                )
                total = probs if total is None else total + probs
        assert total is not None
        return total / len(self.models)

    def preprocess(self, volume: Volume | Sequence[Volume]) -> tuple[dict[Hashable, Any], Compose]:
        """The training preprocessing applied to in-memory volumes (invertible Compose).

        Args:
            volume: the scan, or one volume per input channel (model order, one grid).

        Raises:
            DataError: another number of channels than the model takes, or channels on
                different grids.
        """
        volumes = self._channels(volume)
        keys = channel_keys(self.resolved)
        compose = preprocess_transforms(self.resolved, root=None, with_label=False, load=False)
        data = compose(
            {k: volume_to_metatensor(v, dtype=np.float32) for k, v in zip(keys, volumes)}
        )
        return data, compose

    def _channels(self, volume: Volume | Sequence[Volume]) -> list[Volume]:
        volumes = [volume] if isinstance(volume, Volume) else list(volume)
        names = self.resolved.plan.channels
        if len(volumes) != len(names):
            raise DataError(
                f"{len(volumes)} input channel(s) given; the model takes {len(names)}: "
                f"{', '.join(names)}",
                hint="name channel files <case>_0000, <case>_0001 ... or predict a manifest",
            )
        for name, other in zip(names[1:], volumes[1:]):
            if other.shape != volumes[0].shape or not affines_close(
                other.affine, volumes[0].affine
            ):
                raise DataError(
                    f"channel {name!r} ({other.shape}) is not on the grid of channel "
                    f"{names[0]!r} ({volumes[0].shape})",
                    hint="resample every channel onto the first one's grid",
                )
        return volumes

    def invert(
        self, data: dict[Hashable, Any], compose: Compose, probs: torch.Tensor
    ) -> np.ndarray:
        """Probabilities back on the source grid (``Invertd``, linear), then arg-max (host)."""
        image = data[IMAGE]
        data[PRED] = metatensor_like(probs, image)
        inverted = Invertd(
            keys=PRED, transform=compose, orig_keys=IMAGE, nearest_interp=False, to_tensor=True
        )(data)[PRED]
        return labels_from_probabilities(plain_tensor(inverted))

    def self_check(self) -> None:
        """Segment a blank scan of one window: a model or settings that cannot work fail here,
        before any case of a batch.

        Raises:
            CheckpointError: naming what failed.
        """
        settings, resolved = self.settings, self.resolved
        spacing = np.asarray(resolved.target_spacing, dtype=np.float64)
        if resolved.spatial_dims == 2:
            spacing[resolved.slice_axis] = resolved.plan.median_spacing[resolved.slice_axis]
        blank = Volume(
            np.zeros(settings.window, dtype=np.float32),
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

    def predict(
        self,
        source: Volume | VolumeRef | Sequence[Volume | VolumeRef],
        *,
        root: PathLike | None = None,
        tta: bool | None = None,
    ) -> Prediction:
        """Segment one scan; the label map has exactly the source's shape and affine.

        ``source`` is the scan (volume or reference), or one per input channel (model order;
        the first channel's grid is the output's).
        """
        start = time.perf_counter()
        sources: list[Any] = list(source) if isinstance(source, (list, tuple)) else [source]
        volumes = [s if isinstance(s, Volume) else read_volume(s, root=root) for s in sources]
        volume = volumes[0]
        self.check_compatible(volume)
        data, compose = self.preprocess(volumes)
        if self.resolved.task.kind == "instance":  # Mask R-CNN: no TTA, instances on the side
            from medseg.inference.instance_outputs import predict_instance_case

            return predict_instance_case(self, volume, data, compose, start)
        probs = self.probabilities(data[IMAGE], tta=tta)
        labels = self.invert(data, compose, probs)
        if labels.shape != volume.shape:
            raise RuntimeError(f"inverted label map {labels.shape} != source {volume.shape}")
        labels = postprocess(
            labels,
            spacing=volume.spacing,
            config=self.resolved.postprocess,
            label_names=self.resolved.plan.labels,
        )
        return Prediction(volume.with_array(labels, kind="label"), time.perf_counter() - start)
