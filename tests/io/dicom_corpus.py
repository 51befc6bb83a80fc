"""Run a corpus of real DICOM files through discovery, series QC and reading; tally outcomes.

Each file alone (``find_series([file])``) and each corpus folder as a whole (the discovery of
``manifest build``) is classified as *read* (geometry and voxels checked against the file's own
header, read independently with pydicom, and against SimpleITK where GDCM reads the series),
*listed* (with the reason medseg gives) or *internal* (any exception other than a
:class:`~medseg.errors.MedsegError`: a bug).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from medseg.errors import MedsegError
from medseg.io.dicom import SeriesInfo, find_series
from medseg.io.geometry import ras_to_lps_affine
from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.manifest.build import discover_candidates

SKIPPED_SUFFIXES = (".py", ".pyc", ".json", ".txt", ".dump", ".md")


@dataclass
class Tally:
    """Outcomes of a corpus: per file, and per series found in the corpus folders."""

    files: int = 0
    read: list[str] = field(default_factory=list)
    listed: dict[str, str] = field(default_factory=dict)
    internal: dict[str, str] = field(default_factory=dict)
    wrong: dict[str, str] = field(default_factory=dict)
    series_read: list[str] = field(default_factory=list)
    series_listed: list[tuple[str, str]] = field(default_factory=list)
    sitk_checked: int = 0

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.files} files: {len(self.read)} read OK, {len(self.listed)} listed "
            f"with a reason, {len(self.internal)} internal errors, {len(self.wrong)} wrong "
            f"geometry; folders: {len(self.series_read)} series read "
            f"({self.sitk_checked} cross-checked with SimpleITK), "
            f"{len(self.series_listed)} listed"
        )


def corpus_files(roots: Iterable[Path]) -> list[Path]:
    """Every data file under ``roots`` (code, JSON and text files left out)."""
    out = []
    for root in roots:
        for folder, _, names in os.walk(root):
            out += [
                Path(folder) / n
                for n in sorted(names)
                if not n.lower().endswith(SKIPPED_SUFFIXES) and not n.startswith("README")
            ]
    return sorted(out)


def _errors(series: SeriesInfo) -> str:
    return "; ".join(f"{i.code}: {i.message}" for i in series.issues if i.severity == "error")


def _file_outcome(path: Path) -> tuple[str, str]:
    """("read" | "listed" | "wrong", reason) of one file on its own."""
    discovery = find_series([path])
    if discovery.non_dicom:
        return "listed", "not a DICOM image file (DICOMDIR index or not DICOM)"
    if discovery.unreadable:
        return "listed", f"unreadable: {discovery.unreadable[0][1]}"
    (series,) = discovery.series
    if not series.usable:
        return "listed", _errors(series)
    try:
        volume = read_volume(series)
    except MedsegError as err:
        return "listed", err.describe()
    problems = geometry_problems(volume)
    return ("wrong", "; ".join(problems)) if problems else ("read", "")


def classify_files(files: Sequence[Path], tally: Tally) -> None:
    """Each file alone through discovery, QC and reading."""
    for path in files:
        tally.files += 1
        try:
            status, reason = _file_outcome(path)
        except Exception as err:  # the point of the test: nothing else may escape
            tally.internal[str(path)] = f"{type(err).__name__}: {err}"
            continue
        if status == "read":
            tally.read.append(str(path))
        elif status == "wrong":
            tally.wrong[str(path)] = reason
        else:
            tally.listed[str(path)] = reason


def classify_folder(root: Path, tally: Tally) -> None:
    """``manifest build``'s discovery over a whole folder, then every usable series read."""
    try:
        candidates, summary = discover_candidates(root)
    except Exception as err:
        tally.internal[f"{root} (folder)"] = f"{type(err).__name__}: {err}"
        return
    for item in summary.skipped:
        tally.series_listed.append((item.path, item.reason))
    for cand in candidates:
        name = f"{root.name}/{cand.case_id}"
        try:
            volume = read_volume(cand.source)
        except MedsegError as err:
            tally.series_listed.append((name, err.describe()))
            continue
        except Exception as err:
            tally.internal[name] = f"{type(err).__name__}: {err}"
            continue
        problems = geometry_problems(volume)
        problems += _sitk_problems(volume, tally)
        if problems:
            tally.wrong[name] = "; ".join(problems)
        else:
            tally.series_read.append(name)


def _floats(value: Any) -> np.ndarray:
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _frame_item(ds: Any, group: str, frame: int) -> Any:
    """Functional group item for ``frame`` (per-frame first, then shared), or None."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    for item in [*per_frame[frame : frame + 1], *shared[:1]]:
        if item.get(group):
            return item[group][0]
    return None


def _plane(ds: Any, frame: int | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(ImagePositionPatient or None, ImageOrientationPatient, PixelSpacing) of a frame/file."""
    if frame is None:
        pos = ds.get("ImagePositionPatient")
        return (
            None if pos is None else _floats(pos),
            _floats(ds.ImageOrientationPatient),
            _floats(ds.PixelSpacing),
        )
    position = _frame_item(ds, "PlanePositionSequence", frame)
    orientation = _frame_item(ds, "PlaneOrientationSequence", frame)
    measures = _frame_item(ds, "PixelMeasuresSequence", frame)
    return (
        None if position is None else _floats(position.ImagePositionPatient),
        _floats(orientation.ImageOrientationPatient),
        _floats(measures.PixelSpacing),
    )


def _expected_pixels(ds: Any, pixels: np.ndarray, frame: int | None) -> np.ndarray:
    """Modality values of one frame: stored values through its own RescaleSlope/Intercept."""
    item = ds if frame is None else _frame_item(ds, "PixelValueTransformationSequence", frame)
    slope = float(item.get("RescaleSlope", 1.0) or 1.0) if item is not None else 1.0
    intercept = float(item.get("RescaleIntercept", 0.0) or 0.0) if item is not None else 0.0
    if item is None and "RescaleSlope" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    return pixels.astype(np.float64) * slope + intercept


def _sources(volume: Volume) -> list[tuple[Any, int | None]]:
    """(dataset, frame index or None) of each volume slice, in volume slice order."""
    files = volume.meta["files"]
    if len(files) == 1 and volume.meta.get("frame_order") is not None:
        ds = pydicom.dcmread(files[0], force=True)
        return [(ds, int(i)) for i in volume.meta["frame_order"]]
    return [(pydicom.dcmread(f, force=True), None) for f in files]


def geometry_problems(volume: Volume) -> list[str]:
    """Differences between a read volume and its source files' own headers (empty: all agree).

    Checks: shape (Columns, Rows, slices); in-plane axes = ImageOrientationPatient x
    PixelSpacing; every slice's origin at its ImagePositionPatient (first and last only when
    the slices were unevenly spaced and resampled); first and last slices' voxels = stored
    values x RescaleSlope + RescaleIntercept.
    """
    sources = _sources(volume)
    lps = ras_to_lps_affine(volume.affine)
    ds0, f0 = sources[0]
    _, iop, spacing = _plane(ds0, f0)
    problems = []
    if volume.shape != (int(ds0.Columns), int(ds0.Rows), len(sources)):
        problems.append(f"shape {volume.shape} != (Columns, Rows, {len(sources)})")
    axes = np.stack([iop[:3] * spacing[1], iop[3:6] * spacing[0]], axis=1)
    if not np.allclose(lps[:3, :2], axes, atol=1e-4):
        problems.append(f"in-plane axes {lps[:3, :2].T.tolist()} != {axes.T.tolist()}")
    positions = [_plane(ds, f)[0] for ds, f in sources]
    if all(p is not None for p in positions):
        problems += _position_problems(volume, np.asarray(positions))
    problems += _pixel_problems(volume, sources)
    return problems


def _position_problems(volume: Volume, positions: np.ndarray) -> list[str]:
    steps = np.diff(positions, axis=0)
    uneven = len(steps) > 1 and np.ptp(np.linalg.norm(steps, axis=1)) > 1e-2
    check = [0, len(positions) - 1] if uneven else range(len(positions))
    return [
        f"slice {k} origin {volume.voxel_to_lps([0, 0, k]).tolist()} != {positions[k].tolist()}"
        for k in check
        if not np.allclose(volume.voxel_to_lps([0, 0, k]), positions[k], atol=1e-3)
    ]


def _pixel_problems(volume: Volume, sources: list[tuple[Any, int | None]]) -> list[str]:
    problems = []
    for k in sorted({0, len(sources) - 1}):
        ds, frame = sources[k]
        pixels = ds.pixel_array if frame is None else ds.pixel_array[frame]
        expected = _expected_pixels(ds, pixels, frame)
        got = volume.array[:, :, k].T.astype(np.float64)
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-3):
            diff = float(np.abs(got - expected).max())
            problems.append(f"slice {k} voxels differ from the file by up to {diff:.4g}")
    return problems


def _sitk_problems(volume: Volume, tally: Tally) -> list[str]:
    """SimpleITK (GDCM) on the same files in the same order: origin, axes and voxels agree."""
    import SimpleITK as sitk

    files = volume.meta["files"]
    if len(files) < 2:
        return []
    try:
        sitk.ProcessObject_SetGlobalWarningDisplay(False)
        image = sitk.ReadImage([str(f) for f in files])
    except RuntimeError:
        return []  # GDCM cannot read it (codec): nothing to compare
    tally.sitk_checked += 1
    lps = ras_to_lps_affine(volume.affine)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    axes = direction * np.asarray(image.GetSpacing())
    problems = []
    if not np.allclose(image.GetOrigin(), lps[:3, 3], atol=1e-3):
        problems.append(f"SimpleITK origin {image.GetOrigin()} != {lps[:3, 3].tolist()}")
    if not np.allclose(axes[:, :2], lps[:3, :2], atol=1e-4):
        problems.append("SimpleITK in-plane axes differ")
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)).astype(np.float64)
    resampled = volume.meta.get("resampled_slices") is not None
    if array.shape != volume.shape:
        problems.append(f"SimpleITK shape {array.shape} != {volume.shape}")
    elif not resampled and not np.allclose(array, volume.array, rtol=1e-5, atol=1e-3):
        problems.append("SimpleITK voxels differ")
    return problems
