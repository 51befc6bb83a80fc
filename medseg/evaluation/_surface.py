"""Exact surface distances at the cost of the surfaces, not of the volume.

Definitions (the same as MONAI 1.6 ``get_mask_edges`` + ``get_surface_distance`` with
``distance_metric="euclidean"``, ``use_subvoxels=False``):

* A mask's **surface** is the set of its voxels that have at least one *face* neighbour (6 in 3D,
  4 in 2D) outside the mask; voxels on the array border count as surface (outside is background).
  This is ``mask & ~binary_erosion(mask)`` with scipy's default cross structure.
* The **distance** of a surface voxel to the other surface is the Euclidean distance in mm between
  voxel centres (``spacing`` scales each axis) to the nearest voxel of the other surface.

The work is: one pass over each array to find its voxels (``np.flatnonzero``), then everything
else is proportional to the number of mask and surface voxels. Surface voxels are found by looking
up the face neighbours of each mask voxel. The nearest-surface distances are computed by
``scipy.ndimage.distance_transform_edt(sampling=spacing)`` on the bounding box of both surfaces
when that box is compact, and by a KD-tree over the surface points when the masks are scattered
(several small lesions far apart make the box nearly the whole scan). Both are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import KDTree

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

EDT_MAX_VOXELS_PER_POINT = 8.0
"""Use the EDT when the surfaces' bounding box has at most this many voxels per surface point
(measured crossover on 2 CPU cores: the EDT costs ~0.2 us per box voxel, the KD-tree ~1.8 us per
point); otherwise use the KD-tree."""


@dataclass(frozen=True)
class SparseMask:
    """The voxels of one mask as sorted flat indices into a C-ordered array.

    Attributes:
        flat: the raveled C-ordered array the mask comes from (a view, not a copy).
        value: voxels of ``flat`` equal to ``value`` belong to the mask.
        idx: sorted flat indices of the mask's voxels.
        shape: shape of the array.
    """

    flat: npt.NDArray[Any]
    value: Any
    idx: IndexArray
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of voxels in the mask."""
        return int(self.idx.size)


def c_ordered(
    arrays: Sequence[npt.NDArray[Any]], spacing: Sequence[float]
) -> tuple[list[npt.NDArray[Any]], tuple[float, ...], bool]:
    """Return C-contiguous views of same-shape arrays, with the spacing in their axis order.

    When the first array is Fortran-ordered (what nibabel usually returns), every array is
    transposed instead (a view for Fortran-ordered ones) and the spacing reversed; counts and
    distances do not depend on the axis order. Other layouts are copied.

    Returns:
        ``(arrays, spacing, reversed)``; ``reversed`` says the axes are in reverse order.
    """
    spacing_t = tuple(float(s) for s in spacing)
    first = arrays[0]
    if first.flags.f_contiguous and not first.flags.c_contiguous:
        return [np.ascontiguousarray(a.T) for a in arrays], spacing_t[::-1], True
    return [np.ascontiguousarray(a) for a in arrays], spacing_t, False


def foreground_indices(flat: npt.NDArray[Any], *, chunk: int = 4096) -> IndexArray:
    """Sorted indices of the non-zero elements of a 1D array (``np.flatnonzero``, faster).

    Chunks without foreground are skipped after one vectorised ``any`` per chunk, which is several
    times faster than ``np.flatnonzero`` on integer label maps that are mostly background.
    """
    n_full = flat.size // chunk * chunk
    blocks = flat[:n_full].reshape(-1, chunk)
    rows = np.flatnonzero(blocks.any(axis=1))
    row, col = np.nonzero(blocks[rows])
    head = rows[row].astype(np.intp) * chunk + col
    tail = np.flatnonzero(flat[n_full:]) + n_full
    return np.concatenate([head, tail]) if tail.size else head


def sparse_masks(array: npt.NDArray[Any], values: Sequence[Any]) -> dict[Any, SparseMask]:
    """Split a C-contiguous label (or bool) array into one :class:`SparseMask` per value.

    One pass over the array (``np.flatnonzero``); ``values`` must be non-zero (``True`` for a
    bool mask).
    """
    flat = array.reshape(-1)
    foreground = foreground_indices(flat)
    found = flat[foreground]
    shape = tuple(int(s) for s in array.shape)
    return {v: SparseMask(flat, v, foreground[found == v], shape) for v in values}


def voxel_volume(spacing: Sequence[float]) -> float:
    """Volume of one voxel (mm³ for mm spacing), independent of the axis order."""
    return float(np.prod(sorted(float(s) for s in spacing)))


def _c_strides(shape: tuple[int, ...]) -> list[int]:
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    return strides


def surface_coords(mask: SparseMask) -> npt.NDArray[np.intp]:
    """Voxel indices ``(n, ndim)`` of the mask's surface (face-connected, see module docstring)."""
    idx, shape = mask.idx, mask.shape
    if idx.size == 0:
        return np.empty((0, len(shape)), dtype=np.intp)
    coords = np.unravel_index(idx, shape)
    inner = np.ones(idx.size, dtype=bool)
    for axis_coord, size in zip(coords, shape):
        inner &= (axis_coord > 0) & (axis_coord < size - 1)
    candidates = idx[inner]
    keep = np.ones(candidates.size, dtype=bool)
    for stride in _c_strides(shape):
        for offset in (-stride, stride):
            still = np.flatnonzero(keep)
            keep[still] = mask.flat[candidates[still] + offset] == mask.value
    inner[inner] = keep
    return np.stack([c[~inner] for c in coords], axis=1)


def _edt_distances(
    src: npt.NDArray[np.intp],
    dst: npt.NDArray[np.intp],
    lo: IndexArray,
    box: tuple[int, ...],
    spacing: tuple[float, ...],
) -> FloatArray:
    """Distance (mm) from each ``src`` voxel to the nearest ``dst`` voxel, by EDT on the box."""
    grid = np.ones(box, dtype=bool)
    grid[tuple((dst - lo).T)] = False
    distance = ndimage.distance_transform_edt(grid, sampling=spacing)
    return np.asarray(distance[tuple((src - lo).T)], dtype=np.float64)


def _kdtree_distances(
    src: npt.NDArray[np.intp], dst: npt.NDArray[np.intp], spacing: tuple[float, ...]
) -> FloatArray:
    """Distance (mm) from each ``src`` voxel to the nearest ``dst`` voxel, by KD-tree."""
    scale = np.asarray(spacing, dtype=np.float64)
    tree = KDTree(dst * scale, leafsize=32)
    distance, _ = tree.query(src * scale, k=1, workers=1)
    return np.asarray(distance, dtype=np.float64)


def directed_distances(
    pred_surface: npt.NDArray[np.intp],
    ref_surface: npt.NDArray[np.intp],
    *,
    spacing: tuple[float, ...],
    method: str = "auto",
) -> tuple[FloatArray, FloatArray]:
    """Nearest-surface distances in mm, pred -> ref and ref -> pred.

    Args:
        pred_surface: ``(n, ndim)`` voxel indices of the predicted surface (n >= 1).
        ref_surface: ``(m, ndim)`` voxel indices of the reference surface (m >= 1).
        spacing: voxel size in mm along the array axes.
        method: ``"edt"``, ``"kdtree"`` or ``"auto"`` (EDT when the bounding box of both surfaces
            is compact, see :data:`EDT_MAX_VOXELS_PER_POINT`). All give the same distances.

    Returns:
        ``(pred_to_ref_mm, ref_to_pred_mm)``, float64 arrays of length n and m.
    """
    both = np.concatenate([pred_surface, ref_surface])
    lo, hi = both.min(axis=0), both.max(axis=0)
    box = tuple(int(v) for v in hi - lo + 1)
    if method == "auto":
        compact = float(np.prod(box, dtype=np.float64)) <= EDT_MAX_VOXELS_PER_POINT * len(both)
        method = "edt" if compact else "kdtree"
    if method == "edt":
        return (
            _edt_distances(pred_surface, ref_surface, lo, box, spacing),
            _edt_distances(ref_surface, pred_surface, lo, box, spacing),
        )
    if method == "kdtree":
        return (
            _kdtree_distances(pred_surface, ref_surface, spacing),
            _kdtree_distances(ref_surface, pred_surface, spacing),
        )
    raise ValueError(f"method must be 'auto', 'edt' or 'kdtree', got {method!r}")
