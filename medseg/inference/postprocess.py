"""Post-processing of label maps on the source grid (numpy/scipy, no torch).

Order: fill holes (per class), keep the largest component (named classes), remove components
under ``min_volume_mm3``. Components are :func:`~medseg.labelmaps.label_components`'s
(26-connectivity in 3D: face, edge and corner neighbours).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.config.schema import PostprocessConfig
from medseg.labelmaps import label_components


def remove_small_components(
    labels: npt.NDArray[np.integer], *, spacing: Iterable[float], min_volume_mm3: float
) -> npt.NDArray[np.integer]:
    """Set to background every connected component (per class) smaller than ``min_volume_mm3``.

    Args:
        labels: ``(X, Y, Z)`` label map.
        spacing: voxel size in mm along the same axes.
        min_volume_mm3: smallest kept component volume.
    """
    if min_volume_mm3 <= 0:
        return labels
    voxel_mm3 = float(np.prod(list(spacing)))
    out = labels.copy()
    for value in np.unique(labels):
        if value == 0:
            continue
        components, _ = label_components(labels == value)
        sizes = np.bincount(components.ravel())
        small = np.flatnonzero(sizes * voxel_mm3 < min_volume_mm3)
        small = small[small > 0]
        if small.size:
            out[np.isin(components, small)] = 0
    return out


def keep_largest_component(
    labels: npt.NDArray[np.integer], values: Iterable[int]
) -> npt.NDArray[np.integer]:
    """For each class in ``values``, keep only its largest connected component."""
    out = labels.copy()
    for value in values:
        components, n = label_components(labels == value)
        if n > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[(components > 0) & (components != int(np.argmax(sizes)))] = 0
    return out


def fill_holes(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """Fill enclosed background holes inside each class (3D; a one-slice volume in 2D).

    Along an axis of one voxel every voxel touches the border, so nothing would be enclosed in
    3D: such axes are squeezed and the holes of the slice are filled.
    """
    out = labels.copy()
    flat = tuple(a for a, n in enumerate(labels.shape) if n == 1)
    plane = labels.squeeze(axis=flat) if flat and labels.ndim - len(flat) >= 2 else labels
    for value in np.unique(labels):
        if value == 0:
            continue
        filled = ndimage.binary_fill_holes(plane == value).reshape(labels.shape)
        out[filled & (out == 0)] = value
    return out


def postprocess(
    labels: npt.NDArray[np.integer],
    *,
    spacing: Iterable[float],
    config: PostprocessConfig,
    label_names: Mapping[str, str],
) -> npt.NDArray[np.integer]:
    """Apply the workflow's post-processing; label names in ``keep_largest`` map to values."""
    out = fill_holes(labels) if config.fill_holes else labels
    if config.keep_largest:
        by_name = {name: int(value) for value, name in label_names.items()}
        out = keep_largest_component(out, [by_name[n] for n in config.keep_largest if n in by_name])
    return remove_small_components(out, spacing=spacing, min_volume_mm3=config.min_volume_mm3)
