"""``manifest build`` on a messy clinical export: exact grouping, issues, skipped files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.manifest.schema import load_manifest
from medseg.synth.truth import Truth
from tests.helpers import add_localizer, ct_series


@pytest.fixture
def messy(tmp_path: Path, synth_dir: Callable[..., Path]) -> tuple[Path, Path, str]:
    """A scan folder with every kind of trouble, plus a labels folder."""
    ct = synth_dir("ct", "dicom", patients=3)
    oct_dicom, oct_nifti, oct_png = (
        synth_dir("oct", "dicom"),
        synth_dir("oct", "nifti"),
        synth_dir("oct", "png"),
    )
    scans, labels = tmp_path / "export", tmp_path / "labels"
    labels.mkdir()
    # patient 0: a slice is missing
    shutil.copytree(ct_series(ct, 0), scans / "p0" / "CT")
    (scans / "p0" / "CT" / "IM0010.dcm").unlink()
    # patient 1: a localizer in the series folder (same series UID)
    shutil.copytree(ct_series(ct, 1), scans / "p1" / "CT")
    add_localizer(scans / "p1" / "CT")
    # patient 2: one series split across two folders
    for path in sorted(ct_series(ct, 2).glob("*.dcm")):
        part = "part1" if int(path.stem[2:]) <= 10 else "part2"
        (scans / "p2" / part).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, scans / "p2" / part / path.name)
    for i in range(3):
        shutil.copy(ct / "labels" / f"SYNCT{i:04d}.nii.gz", labels)
    # junk
    (scans / "corrupt.dcm").write_bytes(b"this is not DICOM at all" * 10)
    (scans / "README.txt").write_text("export notes")
    # an OCT DICOM, a NIfTI and a PNG stack
    oct_truth = Truth.load(oct_dicom / "truth.json")
    first = oct_truth.cases[0]
    (scans / "oct").mkdir()
    shutil.copy(oct_dicom / first.image, scans / "oct" / "macula.dcm")
    shutil.copy(oct_dicom / first.label, labels / f"{first.case_id}.nii.gz")
    nii_case = Truth.load(oct_nifti / "truth.json").cases[1]
    (scans / "nifti").mkdir()
    shutil.copy(oct_nifti / nii_case.image, scans / "nifti" / "eye_b.nii.gz")
    sidecar = (oct_nifti / nii_case.image).with_name(nii_case.case_id + ".json")
    shutil.copy(sidecar, scans / "nifti" / "eye_b.json")  # BIDS-style: patient, study, eye
    shutil.copy(oct_nifti / nii_case.label, labels / "eye_b.nii.gz")
    png_case = Truth.load(oct_png / "truth.json").cases[2]
    shutil.copytree(oct_png / png_case.image, scans / "stack_c")
    shutil.copy(oct_png / png_case.label, labels / "stack_c_seg.nii.gz")
    return scans, labels, first.case_id


def test_messy_folder_build(messy: tuple[Path, Path, str], tmp_path: Path) -> None:
    scans, labels, oct_id = messy
    out = tmp_path / "manifests" / "messy.json"
    result = CliRunner().invoke(
        app,
        [
            "--no-progress",
            "manifest",
            "build",
            str(scans),
            "-o",
            str(out),
            "--labels",
            str(labels),
            "--folds",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    cases = {c.case_id: c for c in manifest.cases}
    assert set(cases) == {"SYNCT0001", "SYNCT0002", oct_id, "eye_b", "stack_c"}
    # the split series is one case spanning both folders, in slice order
    split = cases["SYNCT0002"].images["image"]
    assert {Path(f).parts[1] for f in split.files} == {"part1", "part2"}
    assert len(split.files) == 20
    # the localizer is excluded from the series with a warning
    p1 = cases["SYNCT0001"]
    assert [(i.severity, i.code) for i in p1.issues] == [("warning", "localizer_excluded")]
    assert (
        all("LOCALIZER" not in f for f in p1.images["image"].files)
        and len(p1.images["image"].files) == 20
    )
    # every case found its label, OCT cases carry laterality and patients from metadata
    assert all(c.label for c in cases.values())
    assert cases[oct_id].laterality == oct_id[-2:] and cases[oct_id].modality == "OPT"
    assert cases["eye_b"].patient_id.startswith("SYNOCT") and cases["eye_b"].laterality in (
        "OD",
        "OS",
    )
    assert cases["stack_c"].patient_id.startswith("SYNOCT") and cases["stack_c"].laterality in (
        "OD",
        "OS",
    )
    # skipped: the gappy series (error), the corrupt file, the README, an orphan label
    skipped = {s.path: s.reason for s in manifest.skipped}
    assert skipped["corrupt.dcm"].startswith("unreadable DICOM")
    assert skipped["README.txt"] == "not a scan: neither DICOM nor a supported image format (.txt)"
    assert skipped[str(Path("p0") / "CT")].startswith("unusable DICOM series 1: missing_slice")
    assert "instance 9" in skipped[str(Path("p0") / "CT")]
    # the label of the unusable patient pairs with nothing and is listed too
    assert skipped[str(labels / "SYNCT0000.nii.gz")] == "label without a matching image"
    assert len(skipped) == 4
    # no labels.json: label values are read from the label maps
    assert manifest.labels == {"0": "background", "1": "label_1", "2": "label_2"}
    # folds by patient; paths relative to data_root
    assert {c.fold for c in cases.values()} == {0, 1}
    assert manifest.root == scans.resolve()
    assert "patients" in result.output and "skipped" in result.output


def test_pairs_csv(messy: tuple[Path, Path, str], tmp_path: Path) -> None:
    scans, labels, _ = messy
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "image,label,case_id,patient_id\n"
        f"p1/CT,{labels / 'SYNCT0001.nii.gz'},case_a,PA\n"
        f"nifti/eye_b.nii.gz,{labels / 'eye_b.nii.gz'},case_b,PB\n"
        "missing/scan.nii.gz,,case_c,PC\n"
    )
    out = tmp_path / "pairs.json"
    result = CliRunner().invoke(
        app, ["manifest", "build", str(scans), "-o", str(out), "--pairs", str(csv), "--folds", "2"]
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert [c.case_id for c in manifest.cases] == ["case_a", "case_b"]
    assert [c.patient_id for c in manifest.cases] == ["PA", "PB"]
    assert any("line 4" in s.reason for s in manifest.skipped)


def test_bad_pairs_columns(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text("img,lbl\n")
    (tmp_path / "scans").mkdir()
    result = CliRunner().invoke(
        app,
        [
            "manifest",
            "build",
            str(tmp_path / "scans"),
            "-o",
            str(tmp_path / "m.json"),
            "--pairs",
            str(csv),
        ],
    )
    assert result.exit_code == 2
    assert "missing ['image', 'label']" in result.output


def test_hand_edited_manifest_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "name": "x",
                "cases": [
                    {
                        "case_id": "a",
                        "patient_id": "p",
                        "images": {"image": "a.nii.gz"},
                        "fold": "zero",
                    }
                ],
            }
        )
    )
    result = CliRunner().invoke(app, ["manifest", "check", str(path)])
    assert result.exit_code == 2
    assert "cases.0.fold" in result.output
