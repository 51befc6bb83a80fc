"""Test helpers: messy DICOM series out of clean synthetic ones; artifact schema checks."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom

from medseg.artifacts import (
    CaseMetricsRow,
    LesionRow,
    RunReport,
    read_instances_file,
    read_run_report,
)
from medseg.synth.dicom_common import make_uid


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


def validate_prediction_folder(out: Path) -> RunReport:
    """``run_report.json`` and every ``<case_id>.json`` of a prediction folder against their
    schemas; what medseg writes fills every field of an instance record."""
    report = read_run_report(out / "run_report.json")
    assert report.schema_version == 1 and report.medseg_version and report.created
    assert report.summary == RunReport.count(report.cases)
    for case in report.cases:
        if "instances_json" in case.outputs:
            for record in read_instances_file(out / case.outputs["instances_json"]).instances:
                assert None not in record.model_dump().values(), record
    return report


def validate_evaluation_folder(folder: Path) -> tuple[list[CaseMetricsRow], list[LesionRow]]:
    """``case_metrics.csv`` and ``lesions.csv``: the schemas' header and rows that parse."""
    tables = []
    for name, schema in (("case_metrics.csv", CaseMetricsRow), ("lesions.csv", LesionRow)):
        with (folder / name).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames or ()) == schema.columns(), name
            tables.append([schema.model_validate(row) for row in reader])
    return tables[0], tables[1]  # type: ignore[return-value]
