"""``manifest build`` over a folder mixing vendor OCT exports, DICOM OPT and NIfTI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import DataError
from medseg.io.read import read_volume, write_volume
from medseg.manifest.build import build_manifest
from medseg.manifest.vendor import masks_to_volume_grid
from medseg.synth.truth import Truth
from tests.vendor_data import CIRCLE_VOL, HEYEX_VOL, HEYEX_XML, LINE_VOL, vendor_file


@pytest.fixture
def mixed(tmp_path: Path, synth_dir: Callable[..., Path]) -> tuple[Path, Path]:
    """``(scans, labels)``: DICOM OPT + NIfTI (synthetic), VOL, XML folder, circle scan, E2E."""
    scans, labels = tmp_path / "scans", tmp_path / "labels"
    dicom, nifti = synth_dir("oct", "dicom"), synth_dir("oct", "nifti")
    shutil.copytree(dicom / "images", scans / "dicom")
    shutil.copytree(dicom / "labels", labels)
    case = Truth.load(nifti / "truth.json").cases[0]
    shutil.copy(nifti / case.image, scans / "nifti_eye.nii.gz")
    shutil.copy(nifti / case.label, labels / "nifti_eye.nii.gz")
    shutil.copy(vendor_file(LINE_VOL), scans / "line_scan.vol")
    shutil.copy(vendor_file(HEYEX_VOL), scans / "raster.vol")
    shutil.copy(vendor_file(CIRCLE_VOL), scans / "circle_scan.vol")
    shutil.copytree(vendor_file(HEYEX_XML), scans / "visit" / "xml_export")
    (scans / "exam.e2e").write_bytes(b"CMDb" + bytes(32))
    return scans, labels


def test_build_finds_vendor_dicom_and_nifti(
    mixed: tuple[Path, Path], tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    scans, labels = mixed
    dicom_eyes = len(Truth.load(synth_dir("oct", "dicom") / "truth.json").cases)
    xml = read_volume(scans / "visit" / "xml_export")
    label = np.zeros(xml.shape, np.uint8)
    label[5:15, 10:20, 2:5] = 1
    write_volume(xml.with_array(label), labels / "xml_export.nii.gz")  # a NIfTI on the grid
    (labels / "line_scan").mkdir()  # one mask per B-scan for the line scan
    mask = np.zeros((496, 768), np.uint8)
    mask[300:320, 350:420] = 255
    Image.fromarray(mask).save(labels / "line_scan" / "B1.png")
    output = tmp_path / "out" / "mixed.json"
    result = build_manifest(scans, output, labels_dir=labels, n_folds=2)
    cases = {c.case_id: c for c in result.manifest.cases}
    sources = {str(c.images["image"]) for c in cases.values()}
    assert {"line_scan.vol", "raster.vol", "visit/xml_export", "nifti_eye.nii.gz"} <= sources
    assert sum(s.startswith("dicom/") for s in sources) == dicom_eyes  # every DICOM OPT eye
    # HEYEX metadata: eye and date; one patient's two exports of one visit keep their names
    vendor = {str(c.images["image"]): c for c in cases.values() if c.modality == "OPT"}
    assert vendor["line_scan.vol"].case_id == "01234_OD"
    assert (vendor["line_scan.vol"].study_date, vendor["line_scan.vol"].laterality) == (
        "20170111",
        "OD",
    )
    assert {vendor["raster.vol"].case_id, vendor["visit/xml_export"].case_id} == {
        "Study-01_OD_raster",
        "Study-01_OD_xml_export",
    }
    assert vendor["visit/xml_export"].label == "../labels/xml_export.nii.gz"
    reasons = {s.path: s.reason for s in result.manifest.skipped}
    assert reasons["circle_scan.vol"].startswith("circle scan")
    assert reasons["exam.e2e"].startswith("Heidelberg E2E: vendor format not read")
    assert not any("xml_export" in path for path in reasons)  # its TIFFs belong to the export
    converted = output.parent / "mixed_labels" / "01234_OD.nii.gz"
    assert vendor["line_scan.vol"].label == str(
        Path("..") / "out" / "mixed_labels" / converted.name
    )
    line = read_volume(scans / "line_scan.vol")
    mask_volume = read_volume(converted)
    np.testing.assert_allclose(mask_volume.affine, line.affine, atol=1e-9)
    assert mask_volume.array[350, 300, 0] == 1 and mask_volume.array[349, 300, 0] == 0
    assert int(mask_volume.array.sum()) == 20 * 70  # 255 -> 1, column i = A-scan i


def test_mask_folder_must_match_the_bscans(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(folder / "B1.png")
    with pytest.raises(DataError, match="1 mask images for 10 B-scans"):
        masks_to_volume_grid(folder, vendor_file(HEYEX_VOL), tmp_path / "x.nii.gz")
    Image.fromarray(np.zeros((496, 700), np.uint8)).save(folder / "B1.png")
    with pytest.raises(DataError, match="mask is 700 x 496 px; the B-scans are 768 x 496"):
        masks_to_volume_grid(folder, vendor_file(LINE_VOL), tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()


def test_mask_order_follows_the_numbers_in_names(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    for k in range(10):  # B1..B10: B10 sorts before B2 as text
        Image.fromarray(np.full((40, 50), k, np.uint8)).save(folder / f"B{k + 1}.png")
    out = masks_to_volume_grid(folder, vendor_file(HEYEX_VOL), tmp_path / "x.nii.gz")
    stacked = read_volume(out).array
    assert [int(stacked[0, 0, k]) for k in range(10)] == list(range(10))
