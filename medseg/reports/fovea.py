"""Find the fovea of a macular OCT volume, recording how it was found.

Methods, tried in order:

1. ``retina_label``: the thinnest point of the neurosensory retina, where the label map has a
   retina class. Thickness per A-scan = voxels of retina plus intraretinal fluid (subretinal fluid
   is excluded, since it lifts the retina without thickening it), smoothed en-face (σ 0.15 mm).
   Needs the thinnest point at least 20 µm below the median of the searched region.
2. ``ilm_surface``: the deepest point of the foveal pit in the image. The ILM is the first depth
   where the smoothed A-scan crosses 35% of the way from the vitreous to the bright-tissue
   level; subretinal fluid heights from the label map are added back (a detachment lifts the
   pit); a robust quadratic fit removes the eye's curvature and tilt; the pit is the largest
   residual depth. Needs a pit at least 20 µm deeper than the median of the searched region.
3. ``scan_centre``: the centre of the scan.

Both detectors search the central 70% of the scan and refine the optimum to sub-voxel precision
with a parabola through the neighbouring columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io.volume import Volume
from medseg.reports.enface import BSCAN_AXIS, DEPTH_AXIS
from medseg.reports.measure import label_mask
from medseg.reports.schema import Fovea

SMOOTH_MM = 0.15
EDGE_FRACTION = 0.15
MIN_PIT_DEPTH_MM = 0.02
ILM_THRESHOLD = 0.35
ILM_LATERAL_STEP_MM = 0.02

_Map = npt.NDArray[np.float64]


def _enface_spacing(volume: Volume) -> tuple[float, float]:
    spacing = volume.spacing
    return spacing[0], spacing[BSCAN_AXIS]


def _parabola_offset(values: _Map, index: int) -> float:
    """Sub-sample offset of a minimum at ``index`` from a parabola through its neighbours."""
    if index <= 0 or index >= len(values) - 1:
        return 0.0
    a, b, c = values[index - 1], values[index], values[index + 1]
    curvature = a - 2.0 * b + c
    return 0.0 if curvature <= 0 else float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))


def _argmin_central(score: _Map) -> tuple[float, float, float]:
    """Sub-voxel ``(i, k)`` of the minimum of an ``(X, Z)`` map inside its central region, and
    how far the minimum lies below the region's median (the pit depth, in the map's units)."""
    nx, nz = score.shape
    mx, mz = int(nx * EDGE_FRACTION), int(nz * EDGE_FRACTION)
    central = np.full(score.shape, np.inf)
    central[mx : nx - mx, mz : nz - mz] = score[mx : nx - mx, mz : nz - mz]
    i, k = np.unravel_index(int(np.argmin(central)), central.shape)
    depth = float(np.median(score[mx : nx - mx, mz : nz - mz]) - score[i, k])
    fi = i + _parabola_offset(score[:, k], int(i))
    return fi, k + _parabola_offset(score[i, :], int(k)), depth


def _smooth(enface: _Map, volume: Volume) -> _Map:
    sx, sz = _enface_spacing(volume)
    sigma = (SMOOTH_MM / sx, SMOOTH_MM / sz)
    return np.asarray(ndimage.gaussian_filter(enface, sigma, mode="nearest"), dtype=np.float64)


def _first_index(mask: npt.NDArray[np.bool_]) -> _Map:
    """Per column, index of the first True along the depth axis (NaN where none)."""
    first: _Map = np.argmax(mask, axis=DEPTH_AXIS).astype(np.float64)
    first[~mask.any(axis=DEPTH_AXIS)] = np.nan
    return first


def _point(
    volume: Volume, i: float, k: float, depth_index: _Map, method: str, detail: str
) -> Fovea:
    ci = int(np.clip(round(i), 0, volume.shape[0] - 1))
    ck = int(np.clip(round(k), 0, volume.shape[2] - 1))
    j = depth_index[ci, ck]
    j = (volume.shape[DEPTH_AXIS] - 1) / 2.0 if not np.isfinite(j) else float(j) - 0.5
    voxel = (float(i), float(j), float(k))
    lps = tuple(float(v) for v in volume.voxel_to_lps(voxel))
    return Fovea(method=method, lps_mm=lps, voxel=voxel, detail=detail)  # type: ignore[arg-type]


def fovea_from_retina(
    labels: Volume, retina_label: int, intraretinal_labels: Sequence[int]
) -> Fovea | None:
    """Method 1: the thinnest point of the retina label (``None`` if the label is absent)."""
    retina = labels.array == retina_label
    if not retina.any():
        return None
    tissue = retina | label_mask(labels.array, intraretinal_labels)
    thickness = tissue.sum(axis=DEPTH_AXIS).astype(np.float64)
    thickness[thickness == 0] = thickness.max()  # columns without retina are never the fovea
    sy = labels.spacing[DEPTH_AXIS]
    i, k, pit = _argmin_central(_smooth(thickness * sy, labels))
    if pit < MIN_PIT_DEPTH_MM:
        return None
    detail = f"thinnest retina, {pit * 1000:.0f} µm below the central median"
    return _point(labels, i, k, _first_index(tissue), "retina_label", detail)


def _robust_detrend(depth_mm: _Map, volume: Volume) -> _Map:
    """Residual of a quadratic surface fitted to the ILM (3 rounds rejecting >2.5σ outliers)."""
    sx, sz = _enface_spacing(volume)
    u, v = np.meshgrid(np.arange(depth_mm.shape[0]) * sx, np.arange(depth_mm.shape[1]) * sz,
                       indexing="ij")  # fmt: skip
    design = np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=-1)
    good = np.isfinite(depth_mm)
    use = good.copy()
    residual = np.zeros_like(depth_mm)
    for _ in range(3):
        if use.sum() < design.shape[-1]:
            break
        coef, *_ = np.linalg.lstsq(design[use], depth_mm[use], rcond=None)
        residual = depth_mm - design @ coef
        spread = float(np.nanstd(residual[use]))
        use = good & (np.abs(residual) <= 2.5 * spread + 1e-9)
    return np.where(good, residual, 0.0)


def ilm_depth_index(image: Volume) -> _Map:
    """ILM per A-scan: first depth index above the vitreous/tissue threshold ``(X, Z)``.

    Dense scans are searched on every n-th A-scan (about 20 µm apart) and the result repeated
    to the full width: the fovea search smooths over 150 µm anyway.
    """
    stride = max(1, round(ILM_LATERAL_STEP_MM / image.spacing[0]))
    sampled = image.array[::stride].astype(np.float32)
    smooth = ndimage.gaussian_filter(sampled, (1.0, 2.0, 0.0))
    low, high = np.percentile(smooth[::3, ::3, :], [5.0, 99.0])  # a subsample is plenty
    ilm = _first_index(smooth > low + ILM_THRESHOLD * (high - low))
    return np.repeat(ilm, stride, axis=0)[: image.shape[0]]


def fovea_from_image(
    image: Volume, labels: Volume | None = None, subretinal_labels: Sequence[int] = ()
) -> Fovea | None:
    """Method 2: the deepest point of the foveal pit of the ILM (``None`` if no pit is found)."""
    ilm = ilm_depth_index(image)
    if not np.isfinite(ilm).any():
        return None
    sy = image.spacing[DEPTH_AXIS]
    depth_mm = ilm * sy
    if labels is not None and subretinal_labels:
        depth_mm = depth_mm + label_mask(labels.array, subretinal_labels).sum(axis=DEPTH_AXIS) * sy
    residual = _smooth(_robust_detrend(depth_mm, image), image)
    i, k, pit_mm = _argmin_central(-residual)
    if pit_mm < MIN_PIT_DEPTH_MM:
        return None
    return _point(image, i, k, ilm, "ilm_surface", f"pit {pit_mm * 1000:.0f} µm deep")


def scan_centre_fovea(labels: Volume, detail: str) -> Fovea:
    """Method 3: the centre of the scan (depth: the first labelled voxel there, if any)."""
    i, k = (labels.shape[0] - 1) / 2.0, (labels.shape[BSCAN_AXIS] - 1) / 2.0
    return _point(labels, i, k, _first_index(labels.array > 0), "scan_centre", detail)


def find_fovea(
    labels: Volume,
    *,
    image: Volume | None = None,
    retina_label: int | None = None,
    subretinal_labels: Sequence[int] = (),
    intraretinal_labels: Sequence[int] = (),
) -> Fovea:
    """Locate the fovea with the first method that applies (see the module docstring).

    Args:
        labels: predicted label map ``(X, Y, Z)`` = (lateral, depth, B-scan).
        image: the OCT image on the same grid, for the ILM method.
        retina_label: class value of the neurosensory retina, if the label map has one.
        subretinal_labels: fluid classes below the retina (SRF, PED), by value.
        intraretinal_labels: fluid classes inside the retina (IRF), by value.

    Returns:
        :class:`Fovea` with ``method`` ``"retina_label"``, ``"ilm_surface"`` or ``"scan_centre"``
        and the ILM point above the foveal centre in LPS mm.
    """
    if retina_label is not None:
        found = fovea_from_retina(labels, retina_label, intraretinal_labels)
        if found is not None:
            return found
    if image is not None:
        found = fovea_from_image(image, labels, subretinal_labels)
        if found is not None:
            return found
        return scan_centre_fovea(labels, "no foveal pit found in the image")
    return scan_centre_fovea(labels, "no retina label and no image")
