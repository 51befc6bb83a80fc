"""Label statistics: volume, voxel count, intensity, centroid and box of every label of a study.

Unlike lesions (:mod:`medseg.reports.measure`), which are connected components of the lesion
classes, statistics describe each whole label (an organ, a retina, all IRF together), the way
TotalSegmentator's ``--statistics`` does. Every declared foreground label gets a row, present
or not (an absent label has 0 voxels and no intensities or positions), so rows line up across a
cohort. Each label is measured inside its bounding box only (``scipy.ndimage.find_objects``).

Conventions: volume = voxel count x the voxel volume of the label map's affine (mm³);
intensities are the source image's values (HU for CT, the scanner's units otherwise), standard
deviation with ``ddof=0``; the centroid is the mean of the voxel centres and the box the
axis-aligned box of the voxel centres, both in patient LPS mm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from medseg.io.volume import Volume
from medseg.labelmaps import label_values
from medseg.reports.measure import box_lps, label_name, vec3
from medseg.reports.schema import LabelStatistics

__all__ = ["label_statistics"]


def _boxes(labels: np.ndarray, values: list[int]) -> dict[int, tuple[slice, ...]]:
    """Bounding box slices of each present label value (``find_objects`` on the label map)."""
    if not values or labels.size == 0:
        return {}
    array = labels if labels.dtype.kind in "iu" else labels.astype(np.int64)
    found = ndimage.find_objects(array, max_label=max(values))
    return {v: found[v - 1] for v in values if v >= 1 and found[v - 1] is not None}


def _one_label(
    labels: Volume, value: int, name: str, box: tuple[slice, ...] | None, image: Volume | None
) -> LabelStatistics:
    """Statistics of one label; ``box``: its bounding box (None when absent)."""
    empty = LabelStatistics(label=value, label_name=name, voxel_count=0, volume_mm3=0.0)
    if box is None:
        return empty
    mask = labels.array[box] == value
    coords = np.argwhere(mask)
    if len(coords) == 0:
        return empty
    offset = np.array([s.start for s in box], dtype=np.int64)
    lo, hi = coords.min(axis=0) + offset, coords.max(axis=0) + offset
    box_min, box_max = box_lps(labels, lo, hi)
    stats = LabelStatistics(
        label=value,
        label_name=name,
        voxel_count=len(coords),
        volume_mm3=len(coords) * labels.voxel_volume_mm3,
        centroid_lps_mm=vec3(labels.voxel_to_lps(coords.mean(axis=0) + offset)),
        bbox_lps_min_mm=box_min,
        bbox_lps_max_mm=box_max,
    )
    if image is not None:
        inside = image.array[box][mask].astype(np.float64)
        stats.mean_intensity = float(inside.mean())
        stats.std_intensity = float(inside.std())
        stats.min_intensity = float(inside.min())
        stats.max_intensity = float(inside.max())
    return stats


def label_statistics(
    labels: Volume, label_names: Mapping[int, str], image: Volume | None = None
) -> list[LabelStatistics]:
    """Statistics of every foreground label of a label map.

    Args:
        labels: integer label map ``(X, Y, Z)`` with its RAS affine.
        label_names: ``{value: name}``; every non-zero value named here gets a row, as does every
            other foreground value present (named ``label_<value>``).
        image: the source image on the same grid, for the intensity columns.

    Returns:
        One :class:`LabelStatistics` per label, by label value.

    Raises:
        ValueError: ``image`` is not on the label map's grid.
    """
    if image is not None and image.shape != labels.shape:
        raise ValueError(f"image shape {image.shape} differs from label shape {labels.shape}")
    array = labels.array
    present = [v for v in label_values(array) if v != 0]
    values = sorted({*(int(v) for v in label_names if int(v) != 0), *present})
    boxes = _boxes(array, [v for v in present if v > 0])
    names = dict(label_names)
    return [_one_label(labels, v, label_name(names, v), boxes.get(v), image) for v in values]
