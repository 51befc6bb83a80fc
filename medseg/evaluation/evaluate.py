"""Evaluate one case: every class's voxel and surface metrics, and lesion matching.

:func:`evaluate_arrays` is the array-level entry point (also used by training validation): two
label maps, their spacing, the classes. :func:`evaluate_case` takes two :class:`Volume` objects
and checks their geometry first. Voxel metrics always use the semantic label maps; lesion metrics
use predicted instances when given (:class:`PredictedInstances`, with scores for FROC), else the
connected components of the predicted label map (score 1, no FROC).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError
from medseg.evaluation._matching import LesionMatch, MatchResult, match_lesion_maps
from medseg.evaluation._surface import (
    SparseMask,
    c_ordered,
    foreground_indices,
    sparse_masks,
    voxel_volume,
)
from medseg.evaluation.froc import DetectionCurve
from medseg.evaluation.lesions import LesionScores, lesion_scores
from medseg.evaluation.locations import LesionLocation, lesion_locations
from medseg.evaluation.metrics import ClassMetrics, sparse_class_metrics
from medseg.io.volume import Volume
from medseg.labelmaps import label_components

logger = logging.getLogger(__name__)

__all__ = [
    "CaseMetrics",
    "EvaluationOptions",
    "LesionEvaluation",
    "PredictedInstances",
    "evaluate_arrays",
    "evaluate_case",
]


@dataclass(frozen=True)
class EvaluationOptions:
    """Settings of an evaluation (recorded in ``summary.json``).

    Attributes:
        nsd_tolerance_mm: tolerance of the normalised surface distance, mm.
        min_iou: minimum IoU for a predicted and a reference lesion to match; 0 = any overlap.
        connectivity: lesion connectivity: 6, 18 or 26 (default) in 3D, 4 or 8 in 2D.
        min_lesion_mm3: lesions (components or instances) smaller than this are ignored, on both
            sides; voxel metrics are not affected.
        surface: compute HD, HD95, ASSD and NSD (False: NaN, for fast training validation).
        affine_atol_mm: largest difference between the two affines' entries for one grid.
    """

    nsd_tolerance_mm: float = 1.0
    min_iou: float = 0.1
    connectivity: int = 26
    min_lesion_mm3: float = 0.0
    surface: bool = True
    affine_atol_mm: float = 1e-3

    def __post_init__(self) -> None:
        if not (np.isfinite(self.nsd_tolerance_mm) and self.nsd_tolerance_mm >= 0):
            raise ValueError(f"nsd_tolerance_mm must be >= 0, got {self.nsd_tolerance_mm}")
        if not 0.0 <= self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in [0, 1], got {self.min_iou}")
        if self.min_lesion_mm3 < 0:
            raise ValueError(f"min_lesion_mm3 must be >= 0, got {self.min_lesion_mm3}")


@dataclass(frozen=True)
class PredictedInstances:
    """Predicted lesion instances (e.g. Mask R-CNN): an id map and each id's class and score.

    Attributes:
        instances: integer array on the prediction's grid; 0 = background, else instance id.
        labels: instance id -> class label value.
        scores: instance id -> confidence in [0, 1].
    """

    instances: npt.NDArray[Any]
    labels: Mapping[int, int]
    scores: Mapping[int, float]


@dataclass(frozen=True)
class LesionEvaluation:
    """Lesion results of one class in one case: matches, scores, detection curve if scored."""

    matches: tuple[LesionMatch, ...]
    scores: LesionScores
    curve: DetectionCurve | None = None
    ref_locations: dict[int, LesionLocation] = field(default_factory=dict)
    pred_locations: dict[int, LesionLocation] = field(default_factory=dict)

    def location(self, match: LesionMatch) -> LesionLocation | None:
        """Where a match is: the reference lesion (TP, FN) or the predicted one (FP)."""
        if match.ref_id is not None:
            return self.ref_locations.get(match.ref_id)
        return self.pred_locations.get(match.pred_id) if match.pred_id is not None else None


@dataclass(frozen=True)
class CaseMetrics:
    """Everything measured on one case.

    Attributes:
        case_id: the case.
        labels: label value -> class name, for the classes evaluated.
        classes: label value -> :class:`ClassMetrics`.
        lesions: lesion label value -> :class:`LesionEvaluation`.
        scored: predicted lesions came with scores (instances), so FROC applies.
        spacing: voxel size in mm along the array axes.
        affine: the grid's voxel->RAS affine (mm) when known (:func:`evaluate_case`), for
            lesion locations in patient coordinates.
    """

    case_id: str
    labels: dict[int, str]
    classes: dict[int, ClassMetrics]
    lesions: dict[int, LesionEvaluation] = field(default_factory=dict)
    scored: bool = False
    spacing: tuple[float, ...] = ()
    affine: npt.NDArray[np.float64] | None = None


def _label_map(labels: Mapping[int, str] | Sequence[int]) -> dict[int, str]:
    if isinstance(labels, Mapping):
        names = {int(k): str(v) for k, v in labels.items()}
    else:
        names = {int(v): str(int(v)) for v in labels}
    names.pop(0, None)
    return names


def _bbox(masks: Sequence[SparseMask], reverse: bool) -> tuple[slice, ...] | None:
    """Bounding box (original axis order) of the union of sparse masks, None if all empty."""
    idx = np.concatenate([m.idx for m in masks])
    if idx.size == 0:
        return None
    coords = np.unravel_index(idx, masks[0].shape)
    box = [slice(int(c.min()), int(c.max()) + 1) for c in coords]
    return tuple(box[::-1] if reverse else box)


def _instance_crop(
    instances: PredictedInstances, label: int, box: tuple[slice, ...]
) -> npt.NDArray[Any]:
    ids = [i for i, lab in instances.labels.items() if lab == label]
    crop = np.asarray(instances.instances[box])
    return np.where(np.isin(crop, ids), crop, 0)


def _lesions_of_class(
    pred: npt.NDArray[Any],
    ref: npt.NDArray[Any],
    label: int,
    box: tuple[slice, ...] | None,
    voxel_mm3: float,
    options: EvaluationOptions,
    instances: PredictedInstances | None,
) -> LesionEvaluation:
    if box is None:
        result = MatchResult((), None if instances is None else _empty_curve())
    else:
        ref_map, _ = label_components(ref[box] == label, connectivity=options.connectivity)
        if instances is None:
            pred_map, _ = label_components(pred[box] == label, connectivity=options.connectivity)
        else:
            pred_map = _instance_crop(instances, label, box)
        result = match_lesion_maps(
            pred_map,
            ref_map,
            voxel_mm3=voxel_mm3,
            min_iou=options.min_iou,
            min_volume_mm3=options.min_lesion_mm3,
            scores=None if instances is None else instances.scores,
        )
        offset = [s.start for s in box]
        return LesionEvaluation(
            result.matches, lesion_scores(result.matches), result.curve,
            lesion_locations(ref_map, offset), lesion_locations(pred_map, offset),
        )  # fmt: skip
    return LesionEvaluation(result.matches, lesion_scores(result.matches), result.curve)


def _empty_curve() -> DetectionCurve:
    empty = np.empty(0)
    return DetectionCurve(empty.astype(float), empty.astype(np.int64), empty.astype(np.int64), 0)


def evaluate_arrays(
    pred: npt.NDArray[Any],
    ref: npt.NDArray[Any],
    *,
    spacing: Sequence[float],
    labels: Mapping[int, str] | Sequence[int],
    lesion_labels: Sequence[int] = (),
    options: EvaluationOptions | None = None,
    instances: PredictedInstances | None = None,
    case_id: str = "",
) -> CaseMetrics:
    """Evaluate a predicted label map against a reference label map on the same grid.

    Cost: one pass over each array, then proportional to the classes' voxels and surfaces
    (lesion labelling runs on the lesion classes' bounding box).

    Args:
        pred: predicted integer label map, 2D or 3D (0 = background).
        ref: reference label map, same shape.
        spacing: voxel size in mm along the array axes.
        labels: classes to evaluate: label value -> name, or label values (named by number);
            0 is skipped.
        lesion_labels: classes whose lesions are matched (subset of ``labels``).
        options: settings; defaults to :class:`EvaluationOptions()`.
        instances: predicted lesion instances; None = components of ``pred``.
        case_id: carried into the result.

    Returns:
        :class:`CaseMetrics`.

    Example:
        >>> ref = np.zeros((8, 8, 8), np.uint8); ref[2:5, 2:5, 2:5] = 1
        >>> m = evaluate_arrays(ref, ref, spacing=(1, 1, 2), labels={1: "tumour"},
        ...                     lesion_labels=[1])
        >>> m.classes[1].dice, m.classes[1].hd95_mm, m.lesions[1].scores.f1
        (1.0, 0.0, 1.0)
    """
    options = options or EvaluationOptions()
    names = _label_map(labels)
    missing = sorted(set(lesion_labels) - set(names))
    if missing:
        raise ValueError(f"lesion labels {missing} are not among the evaluated labels")
    if pred.shape != ref.shape or len(spacing) != ref.ndim:
        raise ValueError(f"shapes {pred.shape}, {ref.shape} and spacing {spacing} do not agree")
    (pred_c, ref_c), spacing_c, reverse = c_ordered([pred, ref], spacing)
    pred_m, ref_m = sparse_masks(pred_c, list(names)), sparse_masks(ref_c, list(names))
    classes = {
        label: sparse_class_metrics(
            pred_m[label],
            ref_m[label],
            spacing=spacing_c,
            nsd_tolerance_mm=options.nsd_tolerance_mm,
            surface=options.surface,
        )
        for label in names
    }
    voxel_mm3 = voxel_volume(spacing_c)
    lesions = {}
    for label in lesion_labels:
        masks = [pred_m[label], ref_m[label]]
        if instances is not None:
            masks[0] = _instance_mask(instances, label, reverse)
        box = _bbox(masks, reverse)
        lesions[label] = _lesions_of_class(pred, ref, label, box, voxel_mm3, options, instances)
    return CaseMetrics(
        case_id, names, classes, lesions, scored=instances is not None, spacing=tuple(spacing)
    )


def _instance_mask(instances: PredictedInstances, label: int, reverse: bool) -> SparseMask:
    """Sparse mask of the instances of one class, in the C-ordered axis order of the case."""
    array = instances.instances.T if reverse else instances.instances
    (array_c,), _, _ = c_ordered([array], [1.0] * array.ndim)
    ids = [i for i, lab in instances.labels.items() if lab == label]
    flat = array_c.reshape(-1)
    foreground = foreground_indices(flat)
    idx = foreground[np.isin(flat[foreground], ids)]
    return SparseMask(flat, None, idx, tuple(array_c.shape))


def check_geometry(
    pred: Volume, ref: Volume, *, case_id: str, atol_mm: float = 1e-3, what: str = "prediction"
) -> None:
    """Raise :class:`GeometryError` naming the case unless both volumes share one voxel grid."""
    if pred.shape != ref.shape:
        raise GeometryError(
            f"{what} shape {pred.shape} differs from reference shape {ref.shape}",
            case_id=case_id,
            hint="predictions must be written on the reference's grid (same shape and affine)",
        )
    diff = float(np.max(np.abs(pred.affine - ref.affine)))
    if diff > atol_mm:
        raise GeometryError(
            f"{what} affine differs from the reference affine by up to {diff:.4g} mm "
            f"(tolerance {atol_mm:g} mm)",
            case_id=case_id,
            hint="resample the prediction onto the reference grid, or check the case pairing",
        )


def evaluate_case(
    pred: Volume,
    ref: Volume,
    *,
    labels: Mapping[int, str] | Sequence[int],
    lesion_labels: Sequence[int] = (),
    options: EvaluationOptions | None = None,
    instances: PredictedInstances | None = None,
    case_id: str = "",
) -> CaseMetrics:
    """Evaluate a predicted label-map volume against the reference (same grid required).

    Args:
        pred: predicted label map.
        ref: reference label map; its spacing (mm, from the affine) is used.
        labels, lesion_labels, options, instances: as in :func:`evaluate_arrays`.
        case_id: names the case in errors and results.

    Raises:
        GeometryError: shapes differ or affines differ by more than ``options.affine_atol_mm``.
    """
    options = options or EvaluationOptions()
    name = case_id or str(ref.meta.get("source", "case"))
    check_geometry(pred, ref, case_id=name, atol_mm=options.affine_atol_mm)
    if instances is not None and instances.instances.shape != ref.shape:
        raise GeometryError(
            f"instance map shape {instances.instances.shape} differs from {ref.shape}",
            case_id=name,
        )
    metrics = evaluate_arrays(
        pred.array,
        ref.array,
        spacing=ref.spacing,
        labels=labels,
        lesion_labels=lesion_labels,
        options=options,
        instances=instances,
        case_id=case_id,
    )
    return replace(metrics, affine=np.asarray(ref.affine, dtype=np.float64))
