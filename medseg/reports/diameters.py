"""Lesion diameters: exact longest 3D diameter and RECIST-style in-plane long and short axes.

Distances are measured between voxel *centres* in world mm (the affine's 3x3 part carries the
spacing and any obliquity), so a lesion one voxel long has diameter 0 and a sphere of radius ``r``
measures ``2r`` minus at most one voxel diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

_BRUTE_FORCE_MAX = 400  # below this many points, pairwise distances are cheaper than a hull
_EDGE_6 = ndimage.generate_binary_structure(3, 1)
_EDGE_4 = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Axis:
    """A measured segment: length in mm and its end points as indices into the point array."""

    length_mm: float
    first: int
    second: int


def _hull_candidates(points_mm: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Indices of the convex-hull vertices (all points if the set is small)."""
    n = len(points_mm)
    if n <= _BRUTE_FORCE_MAX:
        return np.arange(n)
    try:
        return np.asarray(ConvexHull(points_mm).vertices)
    except QhullError:  # flat or collinear sets: joggle (vertices remain input indices)
        return np.asarray(ConvexHull(points_mm, qhull_options="QJ").vertices)


def max_pairwise_distance(points_mm: npt.NDArray[np.float64]) -> Axis:
    """Exact diameter of a point set: the largest distance between two of its points.

    The two farthest points of a set are vertices of its convex hull, so only hull vertices are
    compared (O(h²) with h hull vertices instead of O(n²)).

    Args:
        points_mm: ``(N, D)`` coordinates in mm, ``N >= 1``.

    Returns:
        The :class:`Axis` (length 0 and both ends 0 for a single point).

    Example:
        >>> max_pairwise_distance(np.array([[0.0, 0, 0], [3, 4, 0], [1, 1, 0]])).length_mm
        5.0
    """
    if len(points_mm) < 2:
        return Axis(0.0, 0, 0)
    candidates = _hull_candidates(points_mm)
    sub = points_mm[candidates]
    distances = cdist(sub, sub)
    a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return Axis(float(distances[a, b]), int(candidates[a]), int(candidates[b]))


def surface_voxels(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """``(N, ndim)`` indices of the mask voxels with a face neighbour outside the mask.

    A one-slice mask has no neighbours across its slice: its surface is its slice's outline.
    """
    flat = tuple(a for a, n in enumerate(mask.shape) if n == 1)
    plane = np.squeeze(mask, axis=flat) if mask.ndim == 3 and len(flat) == 1 else mask
    structure = _EDGE_6 if plane.ndim == 3 else _EDGE_4
    interior = ndimage.binary_erosion(plane, structure=structure, border_value=0)
    return np.argwhere((plane & ~interior).reshape(mask.shape))


def longest_diameter(mask: npt.NDArray[np.bool_], linear: npt.NDArray[np.float64]) -> Axis:
    """Longest 3D diameter of a lesion mask (between surface voxel centres).

    Args:
        mask: ``(x, y, z)`` bool array (a crop of the volume is fine: distances ignore offsets).
        linear: 3x3 part of the voxel->world affine (mm per voxel step, columns = array axes).

    Returns:
        :class:`Axis` whose ``first``/``second`` index rows of :func:`surface_voxels` ``(mask)``.
    """
    surface = surface_voxels(mask)
    return max_pairwise_distance(surface @ linear.T)


@dataclass(frozen=True)
class InplaneAxes:
    """RECIST-style axes of a lesion in one slice (voxel end points in the crop's indices)."""

    slice_index: int
    long_mm: float
    short_mm: float
    long_ends: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    short_ends: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _short_axis(
    world: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    normal: npt.NDArray[np.float64],
    bin_mm: float,
) -> tuple[float, int, int]:
    """Longest chord perpendicular to ``direction``: the widest strip of pixels along it.

    Returns:
        ``(length_mm, first, second)`` with indices into ``world`` (``(N, 3)`` pixel centres).
    """
    across = np.cross(normal, direction)
    along_bins = np.floor(world @ direction / bin_mm).astype(np.int64)
    width = world @ across
    best = (0.0, 0, 0)
    order = np.argsort(along_bins, kind="stable")
    splits = np.flatnonzero(np.diff(along_bins[order])) + 1
    for group in np.split(order, splits):
        lo, hi = group[np.argmin(width[group])], group[np.argmax(width[group])]
        extent = float(width[hi] - width[lo])
        if extent > best[0]:
            best = (extent, int(lo), int(hi))
    return best


def inplane_axes(mask: npt.NDArray[np.bool_], linear: npt.NDArray[np.float64]) -> InplaneAxes:
    """Long and perpendicular short axis in the slice (array axis 2) where the lesion is longest.

    Args:
        mask: ``(x, y, z)`` bool crop of one lesion; slices are ``mask[:, :, k]``.
        linear: 3x3 voxel->world part of the affine (mm).

    Returns:
        :class:`InplaneAxes`; ``slice_index`` is ``k`` within the crop. The short axis is the
        longest chord perpendicular to the long axis (strips one in-plane voxel wide).
    """
    normal = np.cross(linear[:, 0], linear[:, 1])
    normal /= np.linalg.norm(normal)
    bin_mm = float(min(np.linalg.norm(linear[:, 0]), np.linalg.norm(linear[:, 1])))
    best: InplaneAxes | None = None
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        plane = mask[:, :, k]
        edge = surface_voxels(plane)
        edge3 = np.column_stack([edge, np.full(len(edge), k)])
        long = max_pairwise_distance(edge3 @ linear.T)
        if best is not None and long.length_mm <= best.long_mm:
            continue
        pixels = np.argwhere(plane)
        pixels3 = np.column_stack([pixels, np.full(len(pixels), k)])
        a, b = edge3[long.first].astype(float), edge3[long.second].astype(float)
        if long.length_mm > 0:
            direction = (b - a) @ linear.T / long.length_mm
            short, lo, hi = _short_axis(pixels3 @ linear.T, direction, normal, bin_mm)
            short_ends = (pixels3[lo].astype(float), pixels3[hi].astype(float))
        else:
            short, short_ends = 0.0, (a, a)
        best = InplaneAxes(int(k), long.length_mm, short, (a, b), short_ends)
    if best is None:
        raise ValueError("inplane_axes: empty mask")
    return best


def inplane_axes_along(
    mask: npt.NDArray[np.bool_], linear: npt.NDArray[np.float64], slice_axis: int
) -> InplaneAxes:
    """:func:`inplane_axes` in the slices across ``slice_axis`` (end points and ``slice_index``
    in the mask's own axis order); a one-slice volume is measured in its one plane."""
    if slice_axis == 2:
        return inplane_axes(mask, linear)
    order = [a for a in range(3) if a != slice_axis] + [slice_axis]
    found = inplane_axes(np.transpose(mask, order), linear[:, order])
    back = np.argsort(order)
    ends = lambda pair: (pair[0][back], pair[1][back])  # noqa: E731
    return replace(found, long_ends=ends(found.long_ends), short_ends=ends(found.short_ends))
