"""Affine helpers: RAS <-> LPS, DICOM plane geometry, voxel <-> world.

Frames: medseg affines are RAS in mm (the NIfTI convention); DICOM patient coordinates are LPS in
mm. The two differ by a sign flip of the first two world axes. Arrays are indexed ``(X, Y, Z)`` =
(DICOM column, DICOM row, slice), so the first affine column is the DICOM *row* direction
(``ImageOrientationPatient[:3]``) scaled by the column spacing ``PixelSpacing[1]``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from medseg.types import Affine, Spacing

LPS_TO_RAS: Affine = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flip of the first two world axes; its own inverse (LPS <-> RAS)."""


def lps_to_ras_affine(affine_lps: npt.ArrayLike) -> Affine:
    """Convert a voxel->LPS affine to voxel->RAS (or back: the flip is its own inverse)."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


ras_to_lps_affine = lps_to_ras_affine


def lps_to_ras_points(points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Flip ``(..., 3)`` points between LPS and RAS (mm)."""
    out = np.array(points, dtype=np.float64)
    out[..., :2] *= -1.0
    return out


ras_to_lps_points = lps_to_ras_points


def dicom_affine_lps(
    orientation: npt.ArrayLike,
    first_position: npt.ArrayLike,
    pixel_spacing: npt.ArrayLike,
    slice_step: npt.ArrayLike,
) -> Affine:
    """Build the voxel->LPS affine of a DICOM stack indexed ``(column, row, slice)``.

    Args:
        orientation: ``ImageOrientationPatient``, 6 direction cosines (row dir, column dir).
        first_position: ``ImagePositionPatient`` of the first slice (LPS mm), centre of pixel 0,0.
        pixel_spacing: ``PixelSpacing`` = (row spacing, column spacing) in mm.
        slice_step: LPS vector (mm) from one slice's position to the next.

    Returns:
        4x4 float64 affine mapping ``(col, row, slice, 1)`` to LPS mm.
    """
    iop = np.asarray(orientation, dtype=np.float64)
    row_spacing, col_spacing = np.asarray(pixel_spacing, dtype=np.float64)[:2]
    affine = np.eye(4)
    affine[:3, 0] = iop[:3] * col_spacing
    affine[:3, 1] = iop[3:6] * row_spacing
    affine[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    affine[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return affine


def slice_normal(orientation: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit normal of a DICOM image plane: row direction x column direction (LPS)."""
    iop = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:6])
    return normal / np.linalg.norm(normal)


def spacing_from_affine(affine: npt.ArrayLike) -> Spacing:
    """Voxel size in mm along each array axis (norms of the affine's first three columns)."""
    a = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.linalg.norm(a[:3, :3], axis=0))  # type: ignore[return-value]


def apply_affine(affine: npt.ArrayLike, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map ``(..., 3)`` points through a 4x4 affine."""
    a = np.asarray(affine, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ a[:3, :3].T + a[:3, 3]


def world_to_voxel(affine: npt.ArrayLike, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Continuous voxel indices of ``(..., 3)`` world points under ``affine`` (same frame)."""
    return apply_affine(np.linalg.inv(np.asarray(affine, dtype=np.float64)), points)


def affines_close(a: npt.ArrayLike, b: npt.ArrayLike, *, atol_mm: float = 1e-3) -> bool:
    """Whether two affines agree: every voxel corner of a unit cube moves less than ``atol_mm``.

    The direction/spacing part is compared with a relative tolerance of ``1e-4`` per entry (so a
    1 mm voxel may differ by 0.1 um) and the origin with ``atol_mm``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(a[:3, :3]).max()), 1e-12)
    return bool(
        np.allclose(a[:3, :3], b[:3, :3], atol=1e-4 * scale, rtol=0)
        and np.allclose(a[:3, 3], b[:3, 3], atol=atol_mm, rtol=0)
    )
