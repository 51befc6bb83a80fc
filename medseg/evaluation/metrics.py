"""Voxel-overlap and surface-distance metrics of one class, in physical units.

Masks are bool (or 0/non-zero) arrays of the same shape, 2D or 3D, on one voxel grid; ``spacing``
is the voxel size in mm along the array axes, in the same order. Volumes are in mm³, distances in
mm. Surfaces and distances are defined in :mod:`medseg.evaluation._surface` (face-connected
surface voxels, Euclidean distance between voxel centres), identical to MONAI's
``compute_hausdorff_distance`` / ``compute_average_surface_distance(symmetric=True)`` /
``compute_surface_dice`` with ``use_subvoxels=False``.

Definitions (``Sp``/``Sr`` the predicted/reference surfaces, ``d(x, S)`` the distance from x to the
nearest voxel of S):

* HD = max(max_{p∈Sp} d(p, Sr), max_{r∈Sr} d(r, Sp)).
* HD95 = max(P95{d(p, Sr)}, P95{d(r, Sp)}): the larger of the two *directed* 95th percentiles
  (linear interpolation), as MONAI; not the percentile of the pooled distances (MedPy).
* ASSD = mean of the pooled distances of both directions (MONAI ``symmetric=True``, MedPy).
* NSD(τ) = (#{p: d(p, Sr) ≤ τ} + #{r: d(r, Sp) ≤ τ}) / (|Sp| + |Sr|), counting surface voxels
  (MONAI ``use_subvoxels=False``; Nikolov et al. 2021 weight by surface area instead). A relative
  slack of 1e-9 lets distances equal to τ up to rounding count as within.

Empty masks (decided once, here):

* both empty: Dice = IoU = precision = recall = 1; HD = HD95 = ASSD = 0; NSD = 1.
* pred empty, ref not: Dice = IoU = recall = 0; precision, distances and NSD NaN; ``empty_pred``.
* ref empty, pred not: Dice = IoU = precision = 0; recall, distances and NSD NaN; ``empty_ref``.

NaN is never replaced by 0 or inf: summaries report how many values were NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.artifacts import ClassMetrics
from medseg.evaluation._surface import (
    FloatArray,
    SparseMask,
    c_ordered,
    directed_distances,
    sparse_masks,
    surface_indices,
    voxel_volume,
)

NAN = float("nan")
NSD_SLACK = 1e-9

__all__ = [
    "ClassMetrics",
    "SurfaceDistances",
    "assd",
    "compute_class_metrics",
    "dice",
    "hausdorff_distance",
    "hd95",
    "iou",
    "nsd",
    "surface_distances",
]


@dataclass(frozen=True)
class SurfaceDistances:
    """Nearest-surface distances between a predicted and a reference mask.

    Attributes:
        pred_to_ref_mm: distance of each predicted surface voxel to the reference surface.
        ref_to_pred_mm: distance of each reference surface voxel to the predicted surface.
        empty_pred: the predicted mask is empty.
        empty_ref: the reference mask is empty.
    """

    pred_to_ref_mm: FloatArray
    ref_to_pred_mm: FloatArray
    empty_pred: bool
    empty_ref: bool

    def hausdorff_mm(self, percentile: float = 100.0) -> float:
        """Max of the two directed ``percentile``-th percentiles (100: Hausdorff distance)."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        if self.empty_pred or self.empty_ref:
            return 0.0 if self.empty_pred and self.empty_ref else NAN
        return float(
            max(
                np.percentile(self.pred_to_ref_mm, percentile),
                np.percentile(self.ref_to_pred_mm, percentile),
            )
        )

    @property
    def assd_mm(self) -> float:
        """Average symmetric surface distance (mean of the pooled distances)."""
        if self.empty_pred or self.empty_ref:
            return 0.0 if self.empty_pred and self.empty_ref else NAN
        total = self.pred_to_ref_mm.sum() + self.ref_to_pred_mm.sum()
        return float(total / (self.pred_to_ref_mm.size + self.ref_to_pred_mm.size))

    def nsd(self, tolerance_mm: float) -> float:
        """Normalised surface distance (surface Dice) at ``tolerance_mm``."""
        if tolerance_mm < 0 or not np.isfinite(tolerance_mm):
            raise ValueError(f"tolerance_mm must be finite and >= 0, got {tolerance_mm}")
        if self.empty_pred or self.empty_ref:
            return 1.0 if self.empty_pred and self.empty_ref else NAN
        limit = tolerance_mm * (1.0 + NSD_SLACK)
        within = np.count_nonzero(self.pred_to_ref_mm <= limit)
        within += np.count_nonzero(self.ref_to_pred_mm <= limit)
        return float(within / (self.pred_to_ref_mm.size + self.ref_to_pred_mm.size))


def _masks(
    pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: Sequence[float] | None
) -> tuple[SparseMask, SparseMask, tuple[float, ...]]:
    pred_a, ref_a = np.asarray(pred), np.asarray(ref)
    if pred_a.shape != ref_a.shape:
        raise ValueError(f"pred shape {pred_a.shape} differs from ref shape {ref_a.shape}")
    if spacing is None:
        spacing = (1.0,) * pred_a.ndim
    elif len(spacing) != pred_a.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match {pred_a.ndim}D masks")
    masks = [a if a.dtype == bool else a != 0 for a in (pred_a, ref_a)]
    (pred_a, ref_a), spacing_c, _ = c_ordered(masks, spacing)
    return sparse_masks(pred_a, [True])[True], sparse_masks(ref_a, [True])[True], spacing_c


def sparse_surface_distances(
    pred: SparseMask, ref: SparseMask, *, spacing: tuple[float, ...], method: str = "auto"
) -> SurfaceDistances:
    """:func:`surface_distances` on sparse masks of one C-ordered grid (internal fast path)."""
    if pred.size == 0 or ref.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return SurfaceDistances(empty, empty, pred.size == 0, ref.size == 0)
    to_ref, to_pred = directed_distances(
        surface_indices(pred),
        surface_indices(ref),
        shape=pred.shape,
        spacing=spacing,
        method=method,
    )
    return SurfaceDistances(to_ref, to_pred, False, False)


def surface_distances(
    pred: npt.ArrayLike, ref: npt.ArrayLike, *, spacing: Sequence[float], method: str = "auto"
) -> SurfaceDistances:
    """Distances from each surface voxel of one mask to the other mask's surface.

    Args:
        pred: predicted mask, 2D or 3D (non-zero = inside).
        ref: reference mask, same shape and grid.
        spacing: voxel size in mm along the array axes.
        method: ``"auto"``, ``"edt"`` or ``"kdtree"`` (same values; see ``_surface``).

    Example:
        >>> a = np.zeros((5, 5, 5), bool); a[1:4, 1:4, 1:4] = True
        >>> b = np.roll(a, 1, axis=2)
        >>> surface_distances(a, b, spacing=(1.0, 1.0, 2.5)).hausdorff_mm()
        2.5
    """
    pred_m, ref_m, spacing_c = _masks(pred, ref, spacing)
    return sparse_surface_distances(pred_m, ref_m, spacing=spacing_c, method=method)


def _overlap(pred: npt.ArrayLike, ref: npt.ArrayLike) -> tuple[int, int, int]:
    pred_m, ref_m, _ = _masks(pred, ref, None)
    return pred_m.size, ref_m.size, _intersection(pred_m, ref_m)


def _intersection(pred: SparseMask, ref: SparseMask) -> int:
    if pred.size > ref.size:
        pred, ref = ref, pred
    return int(np.count_nonzero(ref.flat[pred.idx] == ref.value))


def dice(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Dice coefficient 2|P∩R| / (|P| + |R|); 1 if both masks are empty.

    Example:
        >>> dice(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
        0.5
    """
    n_pred, n_ref, inter = _overlap(pred, ref)
    return 1.0 if n_pred + n_ref == 0 else 2.0 * inter / (n_pred + n_ref)


def iou(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Intersection over union |P∩R| / |P∪R| (Jaccard); 1 if both masks are empty.

    Example:
        >>> iou(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
        0.3333333333333333
    """
    n_pred, n_ref, inter = _overlap(pred, ref)
    union = n_pred + n_ref - inter
    return 1.0 if union == 0 else inter / union


def hausdorff_distance(
    pred: npt.ArrayLike, ref: npt.ArrayLike, *, spacing: Sequence[float], percentile: float = 100.0
) -> float:
    """Hausdorff distance in mm (``percentile`` < 100: max of directed percentiles, as MONAI)."""
    return surface_distances(pred, ref, spacing=spacing).hausdorff_mm(percentile)


def hd95(pred: npt.ArrayLike, ref: npt.ArrayLike, *, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm: max of the two directed 95th percentiles."""
    return surface_distances(pred, ref, spacing=spacing).hausdorff_mm(95.0)


def assd(pred: npt.ArrayLike, ref: npt.ArrayLike, *, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm."""
    return surface_distances(pred, ref, spacing=spacing).assd_mm


def nsd(
    pred: npt.ArrayLike, ref: npt.ArrayLike, *, spacing: Sequence[float], tolerance_mm: float
) -> float:
    """Normalised surface distance (surface Dice) at ``tolerance_mm``, in [0, 1]."""
    return surface_distances(pred, ref, spacing=spacing).nsd(tolerance_mm)


def _ratio(numerator: int, denominator: int, *, empty: float) -> float:
    return empty if denominator == 0 else numerator / denominator


def sparse_class_metrics(
    pred: SparseMask,
    ref: SparseMask,
    *,
    spacing: tuple[float, ...],
    nsd_tolerance_mm: float,
    surface: bool = True,
) -> ClassMetrics:
    """:func:`compute_class_metrics` on sparse masks of one C-ordered grid (internal fast path)."""
    n_pred, n_ref = pred.size, ref.size
    inter = _intersection(pred, ref)
    both_empty = n_pred == 0 and n_ref == 0
    voxel_mm3 = voxel_volume(spacing)
    if surface:
        distances = sparse_surface_distances(pred, ref, spacing=spacing)
        hd, hd_95 = distances.hausdorff_mm(100.0), distances.hausdorff_mm(95.0)
        mean_mm, surface_dice = distances.assd_mm, distances.nsd(nsd_tolerance_mm)
    else:
        hd = hd_95 = mean_mm = surface_dice = NAN
    return ClassMetrics(
        dice=1.0 if both_empty else 2.0 * inter / (n_pred + n_ref),
        iou=1.0 if both_empty else inter / (n_pred + n_ref - inter),
        precision=1.0 if both_empty else _ratio(inter, n_pred, empty=NAN),
        recall=1.0 if both_empty else _ratio(inter, n_ref, empty=NAN),
        volume_pred_mm3=n_pred * voxel_mm3,
        volume_ref_mm3=n_ref * voxel_mm3,
        volume_diff_mm3=(n_pred - n_ref) * voxel_mm3,
        hd_mm=hd,
        hd95_mm=hd_95,
        assd_mm=mean_mm,
        nsd=surface_dice,
        empty_pred=n_pred == 0,
        empty_ref=n_ref == 0,
    )


def compute_class_metrics(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    nsd_tolerance_mm: float = 1.0,
    surface: bool = True,
) -> ClassMetrics:
    """Every metric of one class at once (one surface-distance computation).

    Args:
        pred: predicted mask, 2D or 3D (non-zero = inside).
        ref: reference mask, same shape and grid.
        spacing: voxel size in mm along the array axes.
        nsd_tolerance_mm: tolerance of the normalised surface distance.
        surface: compute the surface metrics (HD, HD95, ASSD, NSD); NaN when False.

    Returns:
        :class:`ClassMetrics`; empty masks follow the rules in the module docstring.

    Example:
        >>> ref = np.zeros((4, 4, 4), bool); ref[:2] = True
        >>> m = compute_class_metrics(ref[::-1], ref, spacing=(1.0, 1.0, 2.0))
        >>> m.dice, m.recall, m.volume_ref_mm3, m.empty_pred
        (0.0, 0.0, 64.0, False)
    """
    pred_m, ref_m, spacing_c = _masks(pred, ref, spacing)
    return sparse_class_metrics(
        pred_m, ref_m, spacing=spacing_c, nsd_tolerance_mm=nsd_tolerance_mm, surface=surface
    )
