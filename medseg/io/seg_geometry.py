"""Where a label map lands on the frames of a DICOM source: one 2D mask per source frame.

A label map predicted on a DICOM series lives on the grid the series was read onto. That grid is
the source's own slices when they are evenly spaced; when they are not, reading resampled them
onto a uniform grid (:func:`medseg.io.dicom_read.read_series`). A DICOM SEG, however, must put
each frame on a *source* frame. :func:`masks_on_frames` therefore samples the label map at every
source frame's pixel centres in world coordinates (nearest voxel), so each SEG frame shows what
the label map holds on that very plane, whatever the spacing, gaps or tilt.

Frames: source geometry is DICOM patient coordinates (LPS, mm); label maps carry RAS affines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import DataError
from medseg.io.dicom_header import frame_group_item
from medseg.io.geometry import ras_to_lps_affine
from medseg.io.volume import Volume

ALIGN_TOLERANCE_VOXELS = 1e-3
"""A frame whose pixel grid is within this of a label slice (in voxels) is that slice."""


@dataclass(frozen=True)
class FramePlane:
    """Geometry of one source frame in LPS mm.

    Attributes:
        position: ImagePositionPatient, centre of the first pixel (row 0, column 0).
        orientation: ImageOrientationPatient (row direction, column direction).
        pixel_spacing: PixelSpacing (between rows, between columns).
    """

    position: npt.NDArray[np.float64]
    orientation: npt.NDArray[np.float64]
    pixel_spacing: npt.NDArray[np.float64]


@dataclass(frozen=True)
class FrameMasks:
    """Label values on each source frame.

    Attributes:
        labels: ``(frames, rows, columns)`` label values in source frame order.
        offsets_mm: per frame, distance (mm) from the frame to the label slice it was taken from
            (0 when the frame is a slice of the label map's grid).
    """

    labels: npt.NDArray[Any]
    offsets_mm: npt.NDArray[np.float64]

    @property
    def resampled(self) -> bool:
        """Whether any frame is not a slice of the label map's grid."""
        return bool(np.any(self.offsets_mm > 1e-3))


def _floats(value: Any) -> npt.NDArray[np.float64] | None:
    try:
        return None if value is None else np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _plane(position: Any, orientation: Any, spacing: Any) -> FramePlane | None:
    pos, iop, ps = _floats(position), _floats(orientation), _floats(spacing)
    if pos is None or iop is None or ps is None or (len(pos), len(iop), len(ps)) != (3, 6, 2):
        return None
    return FramePlane(pos, iop, ps)


def source_planes(sources: Sequence[Any]) -> list[FramePlane] | None:
    """Plane of every frame of the source datasets, in order (None if any lacks geometry).

    Single-frame images give one plane each (ImagePositionPatient, ImageOrientationPatient,
    PixelSpacing); a multi-frame image gives one per frame from its functional groups.
    """
    planes: list[FramePlane | None] = []
    for ds in sources:
        n_frames = int(ds.get("NumberOfFrames") or 1)
        if "PerFrameFunctionalGroupsSequence" not in ds and n_frames == 1:
            planes.append(
                _plane(
                    ds.get("ImagePositionPatient"),
                    ds.get("ImageOrientationPatient"),
                    ds.get("PixelSpacing"),
                )
            )
            continue
        for k in range(n_frames):
            position = frame_group_item(ds, "PlanePositionSequence", k)
            orient = frame_group_item(ds, "PlaneOrientationSequence", k)
            measures = frame_group_item(ds, "PixelMeasuresSequence", k)
            planes.append(
                _plane(
                    getattr(position, "ImagePositionPatient", None),
                    getattr(orient, "ImageOrientationPatient", None),
                    getattr(measures, "PixelSpacing", None),
                )
            )
    return None if any(p is None for p in planes) else planes  # type: ignore[return-value]


def _frame_indices(
    plane: FramePlane, lps_to_voxel: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Continuous label-map voxel index of the first pixel, and its steps per column and row."""
    row_dir, col_dir = plane.orientation[:3], plane.orientation[3:6]
    origin = lps_to_voxel[:3, :3] @ plane.position + lps_to_voxel[:3, 3]
    per_column = lps_to_voxel[:3, :3] @ (row_dir * plane.pixel_spacing[1])
    per_row = lps_to_voxel[:3, :3] @ (col_dir * plane.pixel_spacing[0])
    return origin, per_column, per_row


def _sample(
    labels: npt.NDArray[Any],
    origin: npt.NDArray[np.float64],
    per_column: Any,
    per_row: Any,
    rows: int,
    columns: int,
) -> npt.NDArray[Any]:
    """Nearest label-map voxel at every pixel centre of a frame; 0 outside the map."""
    c = np.arange(columns, dtype=np.float64)[None, :, None]
    r = np.arange(rows, dtype=np.float64)[:, None, None]
    index = np.floor(origin + c * per_column + r * per_row + 0.5).astype(np.int64)  # (R, C, 3)
    inside = np.all((index >= 0) & (index < np.asarray(labels.shape)), axis=-1)
    out = np.zeros((rows, columns), dtype=labels.dtype)
    i, j, k = (index[..., a][inside] for a in range(3))
    out[inside] = labels[i, j, k]
    return out


def _aligned_slice(
    origin: npt.NDArray[np.float64], per_column: Any, per_row: Any, shape: tuple[int, ...]
) -> int | None:
    """The label slice a frame's pixel grid coincides with, or None."""
    k = int(np.floor(origin[2] + 0.5))
    tol = ALIGN_TOLERANCE_VOXELS
    if (
        np.allclose(per_column, [1, 0, 0], atol=tol)
        and np.allclose(per_row, [0, 1, 0], atol=tol)
        and np.allclose(origin, [0, 0, k], atol=tol)
        and 0 <= k < shape[2]
    ):
        return k
    return None


def _check_covered(k: float, n_slices: int, frame: int) -> None:
    """A frame whose centre is ``k`` slices along the label map's axis must lie within it."""
    tol = ALIGN_TOLERANCE_VOXELS
    if not -0.5 - tol <= k <= n_slices - 0.5 + tol:
        raise DataError(
            f"source frame {frame + 1} lies {k:.2f} slices along the label map's slice axis, "
            f"outside its {n_slices} slices: the label map does not cover the source"
        )


def masks_on_frames(
    labels: Volume, planes: Sequence[FramePlane], rows: int, columns: int
) -> FrameMasks:
    """The label map on every source frame (nearest voxel at each pixel centre).

    Args:
        labels: label map with its RAS affine (array ``(X, Y, Z)``).
        planes: source frames' geometry (LPS), in source order.
        rows, columns: source frame size.

    Raises:
        DataError: a source frame lies outside the label map along its slice axis (by more than
            half a slice): the label map does not cover the source.
    """
    lps_to_voxel = np.linalg.inv(ras_to_lps_affine(labels.affine)).astype(np.float64)
    slice_mm = float(np.linalg.norm(labels.affine[:3, 2]))
    out = np.zeros((len(planes), rows, columns), dtype=labels.array.dtype)
    offsets = np.zeros(len(planes))
    for f, plane in enumerate(planes):
        origin, per_column, per_row = _frame_indices(plane, lps_to_voxel)
        centre = origin + per_column * (columns - 1) / 2 + per_row * (rows - 1) / 2
        _check_covered(float(centre[2]), labels.shape[2], f)
        offsets[f] = abs(centre[2] - np.floor(centre[2] + 0.5)) * slice_mm
        k = _aligned_slice(origin, per_column, per_row, labels.shape)
        if k is not None and rows == labels.shape[1] and columns == labels.shape[0]:
            out[f] = labels.array[:, :, k].T
        else:
            out[f] = _sample(labels.array, origin, per_column, per_row, rows, columns)
    return FrameMasks(out, offsets)


def masks_by_index(labels: Volume, frame_order: Sequence[int] | None, n_frames: int) -> FrameMasks:
    """Label slices onto source frames by index (sources without per-frame positions).

    Volume slice ``k`` came from source frame ``frame_order[k]`` (identity when None).

    Raises:
        DataError: the slice count differs from the source's frame count.
    """
    if labels.shape[2] != n_frames:
        raise DataError(f"label map has {labels.shape[2]} slices, the source series {n_frames}")
    stack = np.transpose(labels.array, (2, 1, 0))  # (Z, rows, columns)
    out = np.zeros_like(stack)
    out[np.asarray(frame_order if frame_order is not None else range(n_frames))] = stack
    return FrameMasks(out, np.zeros(n_frames))
