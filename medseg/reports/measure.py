"""Per-lesion measurements: volume, diameters, centroid, boxes, intensity, and class totals.

A *lesion* is a connected component of one lesion class in a semantic label map
(:func:`~medseg.labelmaps.label_components`, full 26-voxel connectivity by default), or one
instance of an instance map (Mask R-CNN output). Every lesion is measured inside its bounding box
only, so the cost grows with lesion size, not with the volume.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io.volume import Volume
from medseg.labelmaps import label_components
from medseg.reports.diameters import inplane_axes_along, longest_diameter
from medseg.reports.schema import ClassTotal, LesionRecord

logger = logging.getLogger(__name__)

NL_PER_MM3 = 1000.0
"""1 mm³ = 1 µL = 1000 nL."""

_Slices = tuple[slice, slice, slice]


@dataclass(frozen=True)
class InstanceInfo:
    """What an instance JSON says about one instance (``None`` where it says nothing)."""

    label: int | None = None
    score: float | None = None


def label_mask(array: npt.NDArray[Any], values: Iterable[int]) -> npt.NDArray[np.bool_]:
    """Voxels whose label is one of ``values`` (faster than ``np.isin`` for a few values)."""
    mask = np.zeros(array.shape, dtype=bool)
    for value in values:
        mask |= array == value
    return mask


def label_name(names: Mapping[int, str], label: int) -> str:
    """The class name of ``label``, or ``"label_<value>"`` when unnamed."""
    return names.get(label, f"label_{label}")


def _bounding_box(mask: npt.NDArray[np.bool_]) -> _Slices | None:
    """Slices of the smallest box holding every True voxel (``None`` for an empty mask)."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def _semantic_components(
    labels: npt.NDArray[np.integer], lesion_labels: Sequence[int], connectivity: int
) -> Iterator[tuple[int, None, _Slices, npt.NDArray[np.bool_]]]:
    for value in lesion_labels:
        mask = labels == value
        box = _bounding_box(mask)
        if box is None:
            continue
        components, _ = label_components(mask[box], connectivity=connectivity)  # the box only
        for n, local in enumerate(ndimage.find_objects(components), start=1):
            if local is not None:
                slices = tuple(
                    slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local)
                )
                yield value, None, slices, components[local] == n  # type: ignore[misc]


def _instance_components(
    labels: npt.NDArray[np.integer],
    instances: npt.NDArray[np.integer],
    info: Mapping[int, InstanceInfo],
) -> Iterator[tuple[int, int, _Slices, npt.NDArray[np.bool_]]]:
    ids = instances.astype(np.int64, copy=False)
    for n, slices in enumerate(ndimage.find_objects(ids), start=1):
        if slices is None:
            continue
        mask = ids[slices] == n
        value = info.get(n, InstanceInfo()).label
        if value is None:  # majority class of the semantic map inside the instance
            inside = labels[slices][mask]
            inside = inside[inside > 0]
            value = int(np.bincount(inside).argmax()) if inside.size else 0
        yield value, n, slices, mask


def _box_lps(
    volume: Volume, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Axis-aligned LPS box (min, max) of the 8 corner voxel centres of a voxel box."""
    bounds = (lo, hi)
    corners = np.array([[bounds[b][a] for a, b in enumerate(bits)] for bits in np.ndindex(2, 2, 2)])
    lps = volume.voxel_to_lps(corners.astype(float))
    return tuple(map(float, lps.min(axis=0))), tuple(map(float, lps.max(axis=0)))


def _vec(values: npt.ArrayLike) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.asarray(values, dtype=float))  # type: ignore[return-value]


def _measure_one(
    labels: Volume,
    slices: _Slices,
    mask: npt.NDArray[np.bool_],
    image: Volume | None,
    nanolitres: bool,
) -> dict[str, object]:
    """Geometry and intensity of one lesion (fields of :class:`LesionRecord` minus identity)."""
    offset = np.array([s.start for s in slices], dtype=np.int64)
    linear = labels.affine[:3, :3]
    coords = np.argwhere(mask)
    n_voxels = len(coords)
    volume_mm3 = n_voxels * labels.voxel_volume_mm3
    centroid = coords.mean(axis=0) + offset
    lo, hi = coords.min(axis=0) + offset, coords.max(axis=0) + offset
    box_min, box_max = _box_lps(labels, lo, hi)
    flat = [a for a, n in enumerate(labels.shape) if n == 1]
    slice_axis = flat[0] if len(flat) == 1 else 2  # a one-slice volume: its own plane
    axes = inplane_axes_along(mask, linear, slice_axis)
    out: dict[str, object] = {
        "n_voxels": n_voxels,
        "volume_mm3": volume_mm3,
        "volume_nl": volume_mm3 * NL_PER_MM3 if nanolitres else None,
        "longest_diameter_mm": longest_diameter(mask, linear).length_mm,
        "inplane_long_mm": axes.long_mm,
        "inplane_short_mm": axes.short_mm,
        "inplane_slice": int(axes.slice_index + offset[slice_axis]),
        "long_axis_voxel": tuple(_vec(p + offset) for p in axes.long_ends),
        "short_axis_voxel": tuple(_vec(p + offset) for p in axes.short_ends),
        "centroid_voxel": _vec(centroid),
        "centroid_lps_mm": _vec(labels.voxel_to_lps(centroid)),
        "bbox_voxel_min": tuple(int(v) for v in lo),
        "bbox_voxel_max": tuple(int(v) for v in hi),
        "bbox_lps_min_mm": box_min,
        "bbox_lps_max_mm": box_max,
        "slice_first": int(lo[2]),
        "slice_last": int(hi[2]),
    }
    if image is not None:
        values = image.array[slices][mask]
        out["mean_intensity"] = float(values.mean())
        out["max_intensity"] = float(values.max())
    return out


def _check_grids(labels: Volume, image: Volume | None, instances: Volume | None) -> None:
    for other, what in ((image, "image"), (instances, "instance map")):
        if other is not None and other.shape != labels.shape:
            raise ValueError(f"{what} shape {other.shape} differs from label shape {labels.shape}")


def measure_lesions(
    labels: Volume,
    *,
    lesion_labels: Sequence[int],
    label_names: Mapping[int, str] | None = None,
    image: Volume | None = None,
    instances: Volume | None = None,
    instance_info: Mapping[int, InstanceInfo] | None = None,
    nanolitres: bool = False,
    connectivity: int = 26,
    min_volume_mm3: float = 0.0,
) -> list[LesionRecord]:
    """Measure every lesion of a label map.

    Args:
        labels: semantic label map ``(X, Y, Z)`` with its RAS affine.
        lesion_labels: class values whose connected components are lesions.
        label_names: class value -> name (missing names become ``label_<value>``).
        image: the source image on the same grid, for mean/max intensity inside each lesion.
        instances: instance map on the same grid; when given, each instance id is one lesion
            (its class from ``instance_info`` or the majority class of ``labels`` inside it).
        instance_info: instance id -> :class:`InstanceInfo` (class, score) from the instance JSON.
        nanolitres: also report volumes in nL (OCT).
        connectivity: 6, 18 or 26 neighbours connect a lesion's voxels
            (:func:`~medseg.labelmaps.label_components`).
        min_volume_mm3: smaller components are not lesions (e.g. the prediction's
            post-processing floor, so specks it would have removed are not counted).

    Returns:
        Lesions ordered by class, then by decreasing volume, with ``lesion_id`` 1..n.

    Raises:
        ValueError: ``image`` or ``instances`` is not on the label map's grid.
    """
    _check_grids(labels, image, instances)
    names = dict(label_names or {})
    found: Iterator[tuple[int, int | None, _Slices, npt.NDArray[np.bool_]]]
    if instances is not None:
        found = _instance_components(labels.array, instances.array, instance_info or {})
    else:
        found = _semantic_components(labels.array, lesion_labels, connectivity)
    records = []
    min_voxels = min_volume_mm3 / labels.voxel_volume_mm3 if min_volume_mm3 > 0 else 0.0
    for value, instance_id, slices, mask in found:
        if min_voxels and mask.sum() < min_voxels:
            continue
        info = (instance_info or {}).get(instance_id or 0, InstanceInfo())
        fields = _measure_one(labels, slices, mask, image, nanolitres)
        records.append(
            {"label": value, "label_name": label_name(names, value), "instance_id": instance_id,
             "score": info.score, **fields}
        )  # fmt: skip
    records.sort(key=lambda r: (r["label"], -r["n_voxels"]))  # type: ignore[operator]
    lesions = [LesionRecord(lesion_id=i, **r) for i, r in enumerate(records, start=1)]  # type: ignore[arg-type]
    logger.debug("measured %d lesions", len(lesions))
    return lesions


def class_totals(
    lesions: Sequence[LesionRecord],
    *,
    lesion_labels: Sequence[int],
    label_names: Mapping[int, str] | None = None,
    nanolitres: bool = False,
) -> list[ClassTotal]:
    """Lesion count and total volume per lesion class (classes without lesions give zeros)."""
    names = dict(label_names or {})
    values = list(dict.fromkeys([*lesion_labels, *(les.label for les in lesions)]))
    totals = []
    for value in values:
        mine = [les for les in lesions if les.label == value]
        volume_mm3 = float(sum(les.volume_mm3 for les in mine))
        totals.append(
            ClassTotal(
                label=value,
                label_name=label_name(names, value),
                count=len(mine),
                volume_mm3=volume_mm3,
                volume_nl=volume_mm3 * NL_PER_MM3 if nanolitres else None,
            )
        )
    return totals
