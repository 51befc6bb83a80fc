"""Test helpers: messy DICOM series out of clean synthetic ones; artifact schema checks; planning
fingerprints."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

from medseg.artifacts import (
    CaseMetricsRow,
    LesionRow,
    RunReport,
    canonical_column,
    read_instances_file,
    read_run_report,
)
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


def real_data_roots() -> list[Path]:
    """Folders holding re-obtained real public data (``benchmarks/get_*.py``), in search order:
    ``$MEDSEG_REAL_DATA``, the user cache ``~/.cache/medseg/real_data``, ``../shared/real_data``
    beside the checkout."""
    import os

    found = [Path(os.environ["MEDSEG_REAL_DATA"])] if os.environ.get("MEDSEG_REAL_DATA") else []
    found.append(Path.home() / ".cache" / "medseg" / "real_data")
    found.append(Path(__file__).resolve().parents[1].parent / "shared" / "real_data")
    return found


def real_data_dir(name: str) -> Path | None:
    """Folder of the real data set ``name`` (e.g. ``dicom-corpus``), if re-obtained."""
    for root in real_data_roots():
        if (root / name).is_dir():
            return root / name
    return None


def write_highdicom_seg(
    series: Path,
    labels: np.ndarray,
    segments: dict[str, int],
    out: Path,
    *,
    omit_empty_frames: bool = True,
) -> Path:
    """A DICOM SEG as another producer writes it (highdicom, empty frames left out).

    ``labels`` is ``(X, Y, Z)`` on the grid medseg reads from ``series``; ``segments`` maps segment
    labels to label values, in segment-number order.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medseg.io.read import read_volume

    volume = read_volume(series)
    sources = [pydicom.dcmread(f) for f in volume.meta["files"]]  # volume slice order
    masks = np.stack([labels == v for v in segments.values()], axis=-1)
    frames = np.transpose(masks, (2, 1, 0, 3)).astype(np.uint8)  # (slice, row, column, segment)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=name,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for i, name in enumerate(segments)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=50,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="other tool",
        manufacturer_model_name="other tool",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=omit_empty_frames,
    )
    seg.save_as(out)
    return out


def write_slicer_seg(affine_ras: np.ndarray, segments: dict[str, np.ndarray], out: Path) -> Path:
    """A ``.seg.nrrd`` as 3D Slicer writes it (slicerio): ``segments`` name -> boolean mask on
    the grid of ``affine_ras``, cropped to the segments' bounding box; overlapping
    segments go to further layers (a 4D ``list domain domain domain`` file)."""
    import slicerio

    from medseg.io.geometry import ras_to_lps_affine

    union = np.any(np.stack(list(segments.values())), axis=0)
    box = [
        np.flatnonzero(np.any(union, axis=tuple(a for a in range(3) if a != i))) for i in range(3)
    ]
    lo = np.array([b[0] for b in box])
    hi = np.array([b[-1] + 1 for b in box])
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    lps = ras_to_lps_affine(affine_ras)
    lps[:3, 3] = lps[:3, :3] @ lo + lps[:3, 3]
    segmentation = slicerio.create_segmentation(tuple(int(v) for v in hi - lo), lps)
    for name, mask in segments.items():
        slicerio.add_segment(segmentation, mask[crop], {"name": name})
    slicerio.write_segmentation(str(out), segmentation)
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
            header = tuple(reader.fieldnames or ())
            assert tuple(canonical_column(c) for c in header) == schema.columns(), name
            assert "nsd" not in header  # the NSD column names its tolerance (nsd_1.0mm)
            tables.append([schema.model_validate(row) for row in reader])
    return tables[0], tables[1]  # type: ignore[return-value]
