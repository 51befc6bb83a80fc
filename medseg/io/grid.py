"""Put two label maps of one world grid on the same array grid, without interpolation.

Other tools write label maps on the source's world grid but not always on the same array: a
NIfTI converter may flip or permute axes, Slicer may crop a ``.seg.nrrd`` to the segments'
extent and a DICOM SEG may leave out empty frames. Such a map is moved, never resampled: axes are
permuted and flipped to match (nibabel orientation tools), then the array is placed at an integer
voxel offset. Only a map whose reader set ``meta["partial_extent"]`` (segmentation objects, where
everything outside the stored extent is background by definition) may cover another extent than
its partner; for other maps a different shape stays an error. Grids that differ in spacing or
direction, or are shifted by a fraction of a voxel (beyond ``atol_mm``), raise
:class:`~medseg.errors.GeometryError` naming what differs.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError
from medseg.io.geometry import affines_close, apply_affine
from medseg.io.volume import Volume
from medseg.types import Affine

logger = logging.getLogger(__name__)
_HINT = "write both on the source image's grid (same spacing and axes), or check the pairing"
PARTIAL_EXTENT = "partial_extent"
"""``Volume.meta`` key: the map may store only part of its grid (the rest is background)."""


def reorient_like(volume: Volume, affine: Affine) -> Volume:
    """``volume`` with its array axes permuted/flipped to run like ``affine``'s (same world)."""
    import nibabel.orientations as nio

    source, target = nio.io_orientation(volume.affine), nio.io_orientation(affine)
    if np.array_equal(source, target):
        return volume
    transform = nio.ornt_transform(source, target)
    array = nio.apply_orientation(volume.array, transform)
    moved = volume.affine @ nio.inv_ornt_aff(transform, volume.shape)
    return Volume(np.ascontiguousarray(array), moved, dict(volume.meta))


def _offset(volume: Volume, affine: Affine, atol_mm: float, what: str) -> npt.NDArray[np.int64]:
    """Integer voxel index, in ``affine``'s grid, of ``volume``'s first voxel (axes aligned)."""
    a, b = volume.affine[:3, :3], np.asarray(affine, dtype=np.float64)[:3, :3]
    if not np.allclose(a, b, atol=1e-4 * max(float(np.abs(b).max()), 1e-12), rtol=0):
        spacing_a = np.round(np.linalg.norm(a, axis=0), 4).tolist()
        spacing_b = np.round(np.linalg.norm(b, axis=0), 4).tolist()
        detail = (
            f"voxel spacing {spacing_a} mm vs {spacing_b} mm"
            if not np.allclose(spacing_a, spacing_b, rtol=1e-4)
            else "axis directions differ (tilted or sheared grid)"
        )
        raise GeometryError(f"{what} affine differs from the reference's: {detail}", hint=_HINT)
    index = apply_affine(np.linalg.inv(np.asarray(affine, dtype=np.float64)), volume.affine[:3, 3])
    whole = np.rint(index)
    shift_mm = float(np.linalg.norm(b @ (index - whole)))
    if shift_mm > atol_mm:
        raise GeometryError(
            f"{what} affine differs from the reference's: the grid is shifted by "
            f"{shift_mm:.4g} mm, a fraction of a voxel (tolerance {atol_mm:g} mm)",
            hint=_HINT,
        )
    return whole.astype(np.int64)


def _place(
    array: npt.NDArray[np.generic], offset: npt.ArrayLike, shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.generic], int]:
    """``array`` pasted at ``offset`` into zeros of ``shape``; also the non-zero voxels cut off."""
    off = np.asarray(offset, dtype=np.int64)
    out = np.zeros(shape, dtype=array.dtype)
    lo, hi = np.maximum(off, 0), np.minimum(off + array.shape, shape)
    if np.any(hi <= lo):
        return out, int(np.count_nonzero(array))
    dst = tuple(slice(int(s), int(e)) for s, e in zip(lo, hi))
    src = tuple(slice(int(s - o), int(e - o)) for s, e, o in zip(lo, hi, off))
    out[dst] = array[src]
    return out, int(np.count_nonzero(array)) - int(np.count_nonzero(out))


def _partial(volume: Volume) -> bool:
    return bool(volume.meta.get(PARTIAL_EXTENT))


def _shape_error(what: str, shape: tuple[int, ...], other: tuple[int, ...]) -> None:
    raise GeometryError(
        f"{what} shape {shape} differs from the reference shape {other} on the same world grid "
        "(only segmentation objects such as .seg.nrrd and DICOM SEG may store a part of it)",
        hint="predictions must be written on the reference's grid (same shape and affine)",
    )


def onto_grid(
    volume: Volume,
    affine: Affine,
    shape: tuple[int, int, int],
    *,
    atol_mm: float = 1e-3,
    what: str = "label map",
) -> Volume:
    """``volume`` on the grid ``(affine, shape)``: moved, padded with 0, never resampled.

    Raises:
        GeometryError: another spacing/direction, a sub-voxel shift, or labels outside the grid.
    """
    target = np.asarray(affine, dtype=np.float64)
    if volume.shape == tuple(shape) and affines_close(volume.affine, target, atol_mm=atol_mm):
        return volume
    moved = reorient_like(volume, target)
    offset = _offset(moved, target, atol_mm, what)
    if not _partial(volume) and (moved.shape != tuple(shape) or offset.any()):
        _shape_error(what, moved.shape, tuple(shape))
    placed, lost = _place(moved.array, offset, tuple(shape))
    if lost:
        raise GeometryError(
            f"{what} has {lost} labelled voxels outside the target grid {tuple(shape)}", hint=_HINT
        )
    return Volume(placed, target, dict(volume.meta))


def common_grid(
    volume: Volume, reference: Volume, *, atol_mm: float = 1e-3, what: str = "prediction"
) -> tuple[Volume, Volume]:
    """Both label maps on one array grid: ``reference``'s, grown when ``volume`` reaches beyond.

    Args:
        volume: a label map on the reference's world grid up to axis order and extent.
        reference: the label map whose grid is kept (and extended if needed).
        atol_mm: allowed sub-voxel shift of the grids.
        what: names ``volume`` in errors.

    Returns:
        ``(volume, reference)`` on one grid (the inputs themselves when they already share it).

    Raises:
        GeometryError: another spacing/direction or a sub-voxel shift.
    """
    if volume.shape == reference.shape and affines_close(
        volume.affine, reference.affine, atol_mm=atol_mm
    ):
        return volume, reference
    moved = reorient_like(volume, reference.affine)
    offset = _offset(moved, reference.affine, atol_mm, what)
    low = np.minimum(offset, 0)
    high = np.maximum(np.asarray(reference.shape), offset + moved.shape)
    shape = tuple(int(v) for v in high - low)
    affine = reference.affine.copy()
    affine[:3, 3] = apply_affine(reference.affine, low)
    grow = bool(np.any(low < 0)) or shape != reference.shape
    pad = bool(np.any(offset != low)) or shape != moved.shape
    if (grow and not _partial(reference)) or (pad and not _partial(moved)):
        _shape_error(what, moved.shape, reference.shape)
    if grow:
        logger.info("grids of different extent: both placed on a %s grid", shape)
        reference = Volume(_place(reference.array, -low, shape)[0], affine, dict(reference.meta))
    return Volume(_place(moved.array, offset - low, shape)[0], affine, dict(volume.meta)), reference
