"""Test helpers: make messy DICOM series out of clean synthetic ones; planning fingerprints."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom

from medseg.manifest.fingerprint import Fingerprint, IntensityStats
from medseg.synth.dicom_common import make_uid

STATS = IntensityStats(
    mean=40.0, std=20.0, median=40.0, p00_5=-50.0, p99_5=150.0, min=-1e3, max=1e3
)


def uniform_fingerprint(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    modality: str = "CT",
    n_cases: int = 3,
) -> Fingerprint:
    """Fingerprint of ``n_cases`` scans of the same shape (voxels) and spacing (mm), for planning."""
    return Fingerprint(
        manifest="m",
        n_cases=n_cases,
        modality=modality,
        channels=["image"],
        median_spacing=spacing,
        median_shape=shape,
        spacings=[spacing] * n_cases,
        shapes=[shape] * n_cases,
        foreground_intensity={"image": STATS},
        image_intensity={"image": STATS},
        class_fraction={"0": 0.9, "1": 0.1},
        cases=[],
    )


def ct_series(synth_root: Path, patient: int = 0) -> Path:
    """Folder of the synthetic CT series of patient ``patient``."""
    folders = sorted(p for p in (synth_root / "images").glob(f"SYNCT{patient:04d}/*") if p.is_dir())
    assert folders, synth_root
    return folders[0]


def copy_series(src: Path, dst: Path) -> Path:
    """Copy a series folder; returns the copy."""
    shutil.copytree(src, dst)
    return dst


def edit_slices(folder: Path, edit: Callable[[int, pydicom.Dataset], None]) -> None:
    """Apply ``edit(index, dataset)`` to every slice (sorted by file name) and save in place."""
    for index, path in enumerate(sorted(folder.glob("*.dcm"))):
        ds = pydicom.dcmread(path)
        edit(index, ds)
        ds.save_as(path, enforce_file_format=True)


def add_localizer(folder: Path, *, same_series: bool = True) -> Path:
    """Write a sagittal LOCALIZER image into ``folder`` (same or a new series UID)."""
    source = sorted(folder.glob("*.dcm"))[0]
    ds = pydicom.dcmread(source)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.SOPInstanceUID = make_uid("localizer", source)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 999
    if not same_series:
        ds.SeriesInstanceUID = make_uid("localizer-series", source)
        ds.SeriesNumber = 99
    out = folder / "LOCALIZER.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out
