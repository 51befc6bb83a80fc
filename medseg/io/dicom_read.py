"""Read a QC-checked DICOM series (single-frame stack or multi-frame file) into a Volume."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import DataError
from medseg.io.dicom import SeriesInfo
from medseg.io.dicom_header import dcmread_full
from medseg.io.geometry import lps_to_ras_affine
from medseg.io.volume import Volume


def _rescale(ds: Any, path: Any) -> tuple[float, float]:
    """(slope, intercept) of a single-frame dataset or of an enhanced multi-frame's first frame.

    Raises:
        DataError: a rescale value is not a number.
    """
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    shared = ds.get("SharedFunctionalGroupsSequence")
    if slope is None and shared and "PixelValueTransformationSequence" in shared[0]:
        items = shared[0].PixelValueTransformationSequence
        if items:
            slope, intercept = items[0].get("RescaleSlope"), items[0].get("RescaleIntercept")
    try:
        return float(slope if slope not in (None, "") else 1.0), float(
            intercept if intercept not in (None, "") else 0.0
        )
    except (TypeError, ValueError) as err:
        raise DataError(
            f"RescaleSlope/RescaleIntercept {slope!r}/{intercept!r} are not numbers", path=path
        ) from err


def _apply_rescale(
    stored: npt.NDArray[Any], slopes: list[float], intercepts: list[float]
) -> npt.NDArray[Any]:
    """Stored values -> modality values; integer output when the rescale is integral."""
    if all(s == 1.0 for s in slopes) and all(i == 0.0 for i in intercepts):
        return stored
    integral = all(s == 1.0 for s in slopes) and all(float(i).is_integer() for i in intercepts)
    if integral and len(set(intercepts)) == 1:
        out = stored.astype(np.int32) + int(intercepts[0])
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if out.size == 0 or (out.min() >= info.min and out.max() <= info.max):
                return out.astype(dtype)
        return out
    out = stored.astype(np.float32)
    for k, (s, i) in enumerate(zip(slopes, intercepts)):
        if len(slopes) == 1:
            return out * np.float32(s) + np.float32(i)
        out[:, :, k] = out[:, :, k] * np.float32(s) + np.float32(i)
    return out


def _read_single_frames(series: SeriesInfo) -> tuple[npt.NDArray[Any], list[str]]:
    slices, slopes, intercepts, uids = [], [], [], []
    for header in series.headers:
        try:
            ds = dcmread_full(header.path)
            pixels = ds.pixel_array
        except Exception as err:  # decoders raise many types
            raise DataError(f"cannot decode the pixel data: {err}", path=header.path) from err
        if pixels.shape != (header.rows, header.columns):
            raise DataError(f"pixel array shape {pixels.shape} != Rows x Columns", path=header.path)
        slope, intercept = _rescale(ds, header.path)
        slices.append(pixels.T)
        slopes.append(slope)
        intercepts.append(intercept)
        uids.append(str(ds.get("SOPInstanceUID", header.sop_instance_uid)))
    stored = np.stack(slices, axis=2)
    return _apply_rescale(stored, slopes, intercepts), uids


def _read_multiframe(series: SeriesInfo) -> tuple[npt.NDArray[Any], list[str]]:
    header = series.headers[0]
    try:
        ds = dcmread_full(header.path)
        frames = ds.pixel_array
    except Exception as err:
        raise DataError(f"cannot decode the pixel data: {err}", path=header.path) from err
    if frames.ndim != 3:
        raise DataError(
            f"expected (frames, rows, columns) pixels, got {frames.shape}", path=header.path
        )
    order = series.frame_order or list(range(frames.shape[0]))
    stored = np.ascontiguousarray(np.transpose(frames[order], (2, 1, 0)))
    slope, intercept = _rescale(ds, header.path)
    return _apply_rescale(stored, [slope], [intercept]), [header.sop_instance_uid]


def _resample_slices(
    array: npt.NDArray[Any], positions: npt.NDArray[np.float64], n: int
) -> npt.NDArray[np.float32]:
    """Linear interpolation along the slice axis onto ``n`` uniform positions."""
    target = np.linspace(positions[0], positions[-1], n)
    upper = np.clip(np.searchsorted(positions, target, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    w = ((target - positions[lower]) / (positions[upper] - positions[lower])).astype(np.float32)
    data = array.astype(np.float32)
    return data[:, :, lower] * (1 - w) + data[:, :, upper] * w


def _resampling_note(series: SeriesInfo) -> dict[str, Any]:
    """What reading did to unevenly spaced slices: source positions and the uniform step (mm)."""
    positions = np.asarray(series.positions_mm, dtype=np.float64)
    steps = np.diff(positions)
    return {
        "source_positions_mm": [round(float(p), 4) for p in positions],
        "source_steps_mm": [round(float(steps.min()), 4), round(float(steps.max()), 4)],
        "uniform_step_mm": round(float(steps.mean()), 4),
    }


def read_series(series: SeriesInfo) -> Volume:
    """Read a usable series into a :class:`Volume` (RAS affine, modality values).

    Single-frame stacks are read in the QC's slice order and rescaled per slice
    (RescaleSlope/Intercept); non-uniformly spaced slices are linearly resampled onto a uniform
    grid (the QC recorded a warning; ``meta["resampled_slices"]`` records the source positions).
    Multi-frame files are reordered by frame position.

    Raises:
        DataError: the series has QC errors or its pixel data cannot be decoded.
    """
    if not series.usable or series.affine_lps is None or series.shape is None:
        errors = "; ".join(i.message for i in series.issues if i.severity == "error")
        raise DataError(
            f"series cannot be read as a volume: {errors or 'no geometry'}",
            path=series.folders[0] if series.folders else None,
        )
    multiframe = series.headers[0].is_multiframe
    array, uids = _read_multiframe(series) if multiframe else _read_single_frames(series)
    resampled = series.needs_resampling and series.positions_mm is not None
    if resampled:
        array = _resample_slices(array, series.positions_mm, series.shape[2])  # type: ignore[arg-type]
    meta: dict[str, Any] = {
        "source": str(series.folders[0])
        if len(series.folders) == 1
        else [str(f) for f in series.folders],
        "format": "dicom",
        "modality": series.modality,
        "patient_id": series.patient_id,
        "study_uid": series.study_uid,
        "series_uid": series.series_uid,
        "study_date": series.study_date,
        "laterality": series.laterality or None,
        "series_description": series.description,
        "sop_class_uid": series.sop_class_uid,
        "sop_instance_uids": uids,
        "files": [str(p) for p in series.files],
    }
    if multiframe:
        meta["frame_order"] = list(series.frame_order or range(array.shape[2]))
    if resampled:
        meta["resampled_slices"] = _resampling_note(series)
    return Volume(array, lps_to_ras_affine(series.affine_lps), meta)
