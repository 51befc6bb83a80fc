"""Dataset fingerprint: what the planner needs to know about the training data.

Shapes and spacings are reported in the *oriented* axis order the pipelines use (RAS after
MONAI's Orientation), foreground intensities per channel are sampled inside the label map (as
nnU-Net does), and lesion statistics come from connected components of the lesion labels.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medseg.io.atomic import write_text_atomic
from medseg.io.volume import Volume
from medseg.labelmaps import label_components
from medseg.manifest.schema import Case, Manifest
from medseg.types import PathLike, Spacing

logger = logging.getLogger(__name__)
FINGERPRINT_SCHEMA_VERSION = 1
SAMPLES_PER_CASE = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntensityStats(_Model):
    """Intensity statistics of sampled voxels (image units, e.g. HU)."""

    mean: float
    std: float
    median: float
    p00_5: float
    p99_5: float
    min: float
    max: float


class LesionStats(_Model):
    """Connected components of one lesion label across the training cases (volumes in mm^3)."""

    n_lesions: int
    per_case_mean: float
    volume_min_mm3: float | None = None
    volume_median_mm3: float | None = None
    volume_p90_mm3: float | None = None
    volume_max_mm3: float | None = None


class CaseFingerprint(_Model):
    case_id: str
    shape: tuple[int, int, int]
    spacing: Spacing
    label_voxels: dict[str, int]


class Fingerprint(_Model):
    """``fingerprint.json``."""

    schema_version: int = FINGERPRINT_SCHEMA_VERSION
    manifest: str
    n_cases: int
    modality: str
    channels: list[str]
    median_spacing: Spacing
    median_shape: tuple[int, int, int]
    spacings: list[Spacing]
    shapes: list[tuple[int, int, int]]
    foreground_intensity: dict[str, IntensityStats]
    image_intensity: dict[str, IntensityStats]
    class_fraction: dict[str, float]
    lesions: dict[str, LesionStats] = Field(default_factory=dict)
    cases: list[CaseFingerprint]

    def save(self, path: PathLike) -> Path:
        return write_text_atomic(path, self.model_dump_json(indent=2) + "\n")

    def sha256(self) -> str:
        """Hash of the JSON content (recorded in the plan)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    @classmethod
    def load(cls, path: PathLike) -> Fingerprint:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def oriented(volume: Volume) -> tuple[tuple[int, int, int], Spacing]:
    """Shape and spacing in the axis order of the volume reoriented to RAS."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(volume.affine)
    shape, spacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, (out_axis, _) in enumerate(ornt):
        shape[int(out_axis)] = volume.shape[axis]
        spacing[int(out_axis)] = volume.spacing[axis]
    return tuple(shape), tuple(spacing)  # type: ignore[return-value]


def _stats(values: np.ndarray) -> IntensityStats:
    if values.size == 0:
        values = np.zeros(1, dtype=np.float64)
    v = values.astype(np.float64)
    lo, med, hi = np.percentile(v, [0.5, 50, 99.5])
    return IntensityStats(
        mean=float(v.mean()),
        std=float(v.std()),
        median=float(med),
        p00_5=float(lo),
        p99_5=float(hi),
        min=float(v.min()),
        max=float(v.max()),
    )


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if values.size <= SAMPLES_PER_CASE:
        return values
    return values[rng.choice(values.size, SAMPLES_PER_CASE, replace=False)]


def _lesion_volumes(label: np.ndarray, value: int, voxel_mm3: float) -> list[float]:
    components, n = label_components(label == value)
    if n == 0:
        return []
    counts = np.bincount(components.ravel())[1:]
    return [float(c) * voxel_mm3 for c in counts]


def _lesion_stats(volumes: list[float], n_cases: int) -> LesionStats:
    if not volumes:
        return LesionStats(n_lesions=0, per_case_mean=0.0)
    v = np.asarray(volumes)
    return LesionStats(
        n_lesions=len(volumes),
        per_case_mean=len(volumes) / max(n_cases, 1),
        volume_min_mm3=float(v.min()),
        volume_median_mm3=float(np.median(v)),
        volume_p90_mm3=float(np.percentile(v, 90)),
        volume_max_mm3=float(v.max()),
    )


def compute_fingerprint(
    manifest: Manifest,
    cases: Sequence[Case] | None = None,
    *,
    seed: int = 0,
    on_case: Callable[[str], None] | None = None,
) -> Fingerprint:
    """Fingerprint the labelled training cases (default: every labelled ``train`` case)."""
    chosen = (
        list(cases)
        if cases is not None
        else [c for c in manifest.cases if c.split == "train" and c.label]
    )
    if not chosen:
        from medseg.errors import DataError

        raise DataError(f"manifest {manifest.name} has no labelled training cases to plan from")
    rng = np.random.default_rng(seed)
    fg: dict[str, list[np.ndarray]] = {ch: [] for ch in manifest.channels}
    every: dict[str, list[np.ndarray]] = {ch: [] for ch in manifest.channels}
    label_counts: Counter[str] = Counter()
    lesion_volumes: dict[str, list[float]] = {str(v): [] for v in manifest.lesion_labels}
    records = []
    for case in chosen:
        label = manifest.read_label(case)
        mask = label.array > 0
        for channel in manifest.channels:
            image = manifest.read_image(case, channel)
            fg[channel].append(_sample(image.array[mask], rng))
            every[channel].append(_sample(image.array.ravel(), rng))
        values, counts = np.unique(label.array, return_counts=True)
        per_label = {str(int(v)): int(c) for v, c in zip(values, counts)}
        label_counts.update(per_label)
        for value in manifest.lesion_labels:
            lesion_volumes[str(value)] += _lesion_volumes(
                label.array, value, label.voxel_volume_mm3
            )
        shape, spacing = oriented(label)
        records.append(
            CaseFingerprint(
                case_id=case.case_id, shape=shape, spacing=spacing, label_voxels=per_label
            )
        )
        logger.debug("fingerprinted %s", case.case_id)
        if on_case:
            on_case(case.case_id)
    total = sum(label_counts.values())
    modalities = Counter(c.modality or "unknown" for c in chosen)
    spacings = [r.spacing for r in records]
    shapes = [r.shape for r in records]
    return Fingerprint(
        manifest=manifest.name,
        n_cases=len(chosen),
        modality=modalities.most_common(1)[0][0],
        channels=list(manifest.channels),
        median_spacing=tuple(float(v) for v in np.median(np.asarray(spacings), axis=0)),  # type: ignore[arg-type]
        median_shape=tuple(round(v) for v in np.median(np.asarray(shapes), axis=0)),
        spacings=spacings,
        shapes=shapes,
        foreground_intensity={ch: _stats(np.concatenate(v)) for ch, v in fg.items()},
        image_intensity={ch: _stats(np.concatenate(v)) for ch, v in every.items()},
        class_fraction={k: label_counts.get(k, 0) / total for k in manifest.labels},
        lesions={k: _lesion_stats(v, len(chosen)) for k, v in lesion_volumes.items()},
        cases=records,
    )
