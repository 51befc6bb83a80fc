"""DICOM SR (TID 1500) of the report numbers, one per source study: read back with highdicom,
every number equal to report.json, each lesion referencing its own SEG's segment, dciodvfy-valid;
a CT patient with 3 lesions, an OCT patient with both eyes at each of two visits."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from medseg.artifacts import RunReport
from medseg.cli import app
from medseg.coding import resolve_codings
from medseg.io.dicom_seg import SegContent, write_dicom_seg
from medseg.io.nifti import write_nifti
from medseg.io.read import read_volume
from medseg.reports import PatientReport, load_prediction_set, write_reports
from medseg.reports.dicom_sr import LOCAL_SCHEME, sr_file_name
from medseg.synth.truth import Truth
from tests.reports.conftest import RUN_REPORT_BASE

SHA = "cd" * 32


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed: `apt-get install dicom3tools` (.ci/run installs it)")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _three_lesions(shape: tuple[int, int, int]) -> np.ndarray:
    """An organ (1) holding three separate lesions (2) of different sizes."""
    labels = np.zeros(shape, np.uint8)
    x, y, z = shape
    labels[x // 8 : 7 * x // 8, y // 8 : 7 * y // 8, 1 : z - 1] = 1
    for n, (cx, size) in enumerate(((x // 4, 3), (x // 2, 4), (3 * x // 4, 2))):
        labels[cx - size : cx + size, y // 2 - size : y // 2 + size, z // 2 - n : z // 2 + 1] = 2
    return labels


def _prediction_folder(
    pred: Path,
    cases: dict[str, tuple[Path, np.ndarray, str]],
    labels: dict[str, str],
    lesion_labels: list[int],
    modality: str,
) -> None:
    """What ``predict --dicom-seg`` writes: label maps, SEGs and the run report."""
    names = {int(k): v for k, v in labels.items()}
    codings = resolve_codings(names, lesion_labels)
    content = SegContent(label_names=names, codings=codings, algorithm_version=SHA)
    rows = []
    pred.mkdir(parents=True, exist_ok=True)
    for case_id, (source, array, patient) in cases.items():
        volume = read_volume(source)
        labelled = volume.with_array(array)
        write_nifti(labelled, pred / f"{case_id}.nii.gz")
        write_dicom_seg(labelled, volume.meta["files"], pred / f"{case_id}.seg.dcm",
                        content=content, frame_order=volume.meta.get("frame_order"))  # fmt: skip
        rows.append({"case_id": case_id, "status": "done", "patient_id": patient,
                     "modality": modality, "source": str(source),
                     "outputs": {"labels": f"{case_id}.nii.gz",
                                 "dicom_seg": f"{case_id}.seg.dcm"}})  # fmt: skip
    report = {**RUN_REPORT_BASE, "checkpoints": [{"path": "x.pt", "sha256": SHA, "fold": 0}],
              "labels": labels, "lesion_labels": lesion_labels, "cases": rows,
              "label_codes": {str(v): c.model_dump() for v, c in codings.items()}}  # fmt: skip
    RunReport.model_validate(report)
    (pred / "run_report.json").write_text(json.dumps(report))


def _groups(sr: hd.sr.Comprehensive3DSR) -> tuple[dict[str, object], dict[str, object]]:
    """Volumetric ROI groups and plain measurement groups by tracking identifier."""
    content = hd.sr.MeasurementReport.from_sequence([sr])
    rois = {g.tracking_identifier: g for g in content.get_volumetric_roi_measurement_groups()}
    plain = {g.tracking_identifier: g for g in content.get_image_measurement_groups()}
    return rois, plain


def _values(group: object) -> dict[str, float]:
    return {m.name.meaning: m.value for m in group.get_measurements()}  # type: ignore[attr-defined]


def _study_file(source: Path) -> str:
    """The SR name the README documents, from the source DICOM: ``<date>_<sha256[:8]>.sr.dcm``."""
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    date = f"{ds.StudyDate[:4]}-{ds.StudyDate[4:6]}-{ds.StudyDate[6:]}"
    return f"{date}_{hashlib.sha256(ds.StudyInstanceUID.encode()).hexdigest()[:8]}.sr.dcm"


def _evidence(sr: pydicom.Dataset) -> set[str]:
    return {ref.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
            for series_item in s.ReferencedSeriesSequence
            for ref in series_item.ReferencedSOPSequence}  # fmt: skip


def _check_lesions(study: dict, rois: dict, seg: pydicom.Dataset) -> None:
    numbers = {s.SegmentLabel: int(s.SegmentNumber) for s in seg.SegmentSequence}
    for lesion in study["lesions"]:
        group = rois[f"{study['case_id']} {lesion['label_name']} lesion {lesion['lesion_id']}"]
        values = _values(group)
        assert values["Volume"] == lesion["volume_mm3"]
        assert values["Long axis"] == lesion["inplane_long_mm"]
        assert values["Short axis"] == lesion["inplane_short_mm"]
        assert values["Diameter"] == lesion["longest_diameter_mm"]
        intensity = "Attenuation Coefficient" if study["modality"] == "CT" else "Image intensity"
        assert values[intensity] == lesion["mean_intensity"]
        segment = group.referenced_segment  # type: ignore[attr-defined]
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert segment.referenced_segment_numbers == [numbers[lesion["label_name"]]]
        assert group.finding_type is not None  # type: ignore[attr-defined]


def _check_totals(study: dict, plain: dict) -> None:
    counts = {t["label_name"]: t["count"] for t in study["totals"]}
    for stats in study["statistics"]:
        values = _values(plain[f"{study['case_id']} {stats['label_name']} total"])
        assert values["Volume"] == stats["volume_mm3"]
        intensity = "Attenuation Coefficient" if study["modality"] == "CT" else "Image intensity"
        assert values.get(intensity) == stats["mean_intensity"]
        if stats["label_name"] in counts:
            assert values["Number of lesions"] == counts[stats["label_name"]]


def _ct_predictions(root: Path, tmp_path: Path) -> tuple[str, Path, Path]:
    """A CT patient (P1) whose prediction holds an organ and three lesions; (case id, images,
    one source file)."""
    case = Truth.load(root / "truth.json").cases[0]
    series = root / case.image
    series = series if series.is_dir() else series.parent
    shape = read_volume(series).shape
    labels = {"0": "background", "1": "liver", "2": "tumour"}
    _prediction_folder(tmp_path / "pred", {case.case_id: (series, _three_lesions(shape), "P1")},
                       labels, [2], "CT")  # fmt: skip
    images = tmp_path / "images"
    images.mkdir()
    (images / case.case_id).symlink_to(series, target_is_directory=True)
    return case.case_id, images, sorted(series.glob("*.dcm"))[0]


def test_cli_report_dicom_sr(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    case_id, images, source = _ct_predictions(synth_dir("ct", "dicom", patients=1), tmp_path)
    out = tmp_path / "reports"
    args = ["--no-progress", "report", str(tmp_path / "pred"), "-o", str(out), "--dicom-sr"]
    result = CliRunner().invoke(app, [*args, "--images", str(images)])
    assert result.exit_code == 0, result.output
    assert "1 DICOM SR written, 0 cases without" in result.output
    sr = pydicom.dcmread(out / "P1" / _study_file(source))
    texts = {str(e.value) for e in sr.iterall() if e.VR in ("UI", "UT")}
    seg = pydicom.dcmread(out / "P1" / f"{case_id}.seg.dcm")
    assert seg.SOPInstanceUID in texts and SHA in texts  # the SEG and the checkpoint
    (tmp_path / "pred" / f"{case_id}.seg.dcm").unlink()  # no SEG: the report says why, exit 1
    result = CliRunner().invoke(app, [*args, "--images", str(images)])
    assert result.exit_code == 1 and "no DICOM SEG" in result.output


def test_ct_patient_with_three_lesions(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    case_id, images, source = _ct_predictions(synth_dir("ct", "dicom", patients=1), tmp_path)
    out = tmp_path / "reports"
    outcomes = list(write_reports(load_prediction_set(tmp_path / "pred", images=images), out,
                                  dicom_sr=True))  # fmt: skip
    name = _study_file(source)
    assert [(o.status, o.dicom_sr, o.sr_error) for o in outcomes] == [("done", name, None)]
    sr_path, seg_path = out / "P1" / name, out / "P1" / f"{case_id}.seg.dcm"
    assert _dciodvfy_errors(sr_path) == []
    report = json.loads((out / "P1" / "report.json").read_text())
    PatientReport.model_validate(report)
    (study,) = report["studies"]
    assert len(study["lesions"]) == 3 and study["image_used"]
    sr = hd.sr.srread(sr_path)
    seg = pydicom.dcmread(seg_path)
    assert sr.Modality == "SR" and _evidence(sr) == {seg.SOPInstanceUID}
    assert sr.StudyInstanceUID == pydicom.dcmread(source).StudyInstanceUID  # the source study
    rois, plain = _groups(sr)
    assert len(rois) == 3
    _check_lesions(study, rois, seg)
    _check_totals(study, plain)
    assert set(plain) == {f"{case_id} liver total", f"{case_id} tumour total"}  # the organ too
    tumour = rois[f"{case_id} tumour lesion 1"]
    assert tumour.finding_type.meaning == "Neoplasm"  # type: ignore[attr-defined]
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == LOCAL_SCHEME


def _check_oct_case(study: dict, rois: dict, plain: dict, seg: pydicom.Dataset) -> None:
    """One eye's groups in its visit's SR: numbers, its own SEG, its eye as finding site."""
    _check_lesions(study, rois, seg)
    _check_totals(study, plain)
    side = {"OD": "Right", "OS": "Left"}[study["laterality"]]
    for lesion in study["lesions"]:
        key = f"{study['case_id']} {lesion['label_name']} lesion {lesion['lesion_id']}"
        (site,) = rois[key].finding_sites
        assert site.value.meaning == "Retina" and site.laterality.meaning == side
        assert site.topographical_modifier.scheme_designator == LOCAL_SCHEME
        assert lesion["etdrs_subfield"].split("_")[-1] in site.topographical_modifier.meaning
    for stats in study["statistics"]:
        (site,) = plain[f"{study['case_id']} {stats['label_name']} total"].finding_sites
        assert site.laterality.meaning == side
    for sub in study["oct"]["etdrs"]:
        for name, volume_nl in sub["fluid_nl"].items():
            group = plain[f"{study['case_id']} {name} in {sub['name']}"]
            (measurement,) = group.get_measurements()
            assert measurement.value == volume_nl and measurement.unit.value == "nL"
            assert group.finding_sites[0].laterality.meaning == side


def test_oct_visits_with_both_eyes(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    """Patient 0 of seed 0 has both eyes scanned at each of two visits: one SR per visit, each
    holding both eyes, each eye's groups referencing its own SEG."""
    root = synth_dir("oct", "dicom", patients=1, visits=2)
    truth = Truth.load(root / "truth.json")
    cases = {c.case_id: (root / c.image, read_volume(root / c.label).array.astype(np.uint8), "P2")
             for c in truth.cases}  # fmt: skip
    _prediction_folder(tmp_path / "pred", cases, truth.labels, truth.lesion_labels, "OPT")
    out = tmp_path / "reports"
    outcomes = list(write_reports(load_prediction_set(tmp_path / "pred"), out, dicom_sr=True))
    files = {case_id: _study_file(source) for case_id, (source, _, _) in cases.items()}
    assert {o.case_id: o.dicom_sr for o in outcomes} == files
    assert len(set(files.values())) == 2 and len(files) == 4  # two visits, two eyes each
    studies = {s["case_id"]: s for s in json.loads((out / "P2" / "report.json").read_text())
               ["studies"]}  # fmt: skip
    for name in set(files.values()):
        assert _dciodvfy_errors(out / "P2" / name) == []
        sr = hd.sr.srread(out / "P2" / name)
        visit = sorted(case_id for case_id, file in files.items() if file == name)
        assert [studies[c]["laterality"] for c in visit] == ["OD", "OS"]
        segs = {c: pydicom.dcmread(out / "P2" / f"{c}.seg.dcm") for c in visit}
        assert _evidence(sr) == {seg.SOPInstanceUID for seg in segs.values()}
        assert sr.StudyInstanceUID == pydicom.dcmread(cases[visit[0]][0]).StudyInstanceUID
        rois, plain = _groups(sr)
        assert len(rois) == sum(len(studies[c]["lesions"]) for c in visit) > 0
        for case_id in visit:
            assert studies[case_id]["lesions"]
            _check_oct_case(studies[case_id], rois, plain, segs[case_id])


def test_study_file_names_are_stable_and_safe() -> None:
    """Same study, same name; two studies on one day differ; a bad date is not a file name."""
    seg = pydicom.Dataset()
    seg.StudyDate, seg.StudyInstanceUID = "20240115", "1.2.826.0.1.1"
    other = pydicom.Dataset()
    other.StudyDate, other.StudyInstanceUID = "20240115", "1.2.826.0.1.2"
    expected = "2024-01-15_" + hashlib.sha256(b"1.2.826.0.1.1").hexdigest()[:8] + ".sr.dcm"
    assert sr_file_name(seg) == expected
    assert sr_file_name(other) != expected
    with warnings.catch_warnings():  # pydicom warns of the invalid DA a scanner might write
        warnings.simplefilter("ignore")
        seg.StudyDate = "../x/2024"
    assert sr_file_name(seg).startswith("undated_")
    del seg.StudyDate
    assert sr_file_name(seg).startswith("undated_")


def test_no_seg_means_no_sr_and_says_why(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    from tests.reports.conftest import write_predictions

    root = synth_dir("ct", "nifti")
    write_predictions(root, tmp_path / "pred", modality="CT")
    outcomes = list(write_reports(load_prediction_set(tmp_path / "pred"), tmp_path / "out",
                                  dicom_sr=True))  # fmt: skip
    assert outcomes and all(o.status == "done" and o.dicom_sr is None for o in outcomes)
    assert all("predict --dicom-seg" in (o.sr_error or "") for o in outcomes)
    report = json.loads((tmp_path / "out" / outcomes[0].patient_id / "report.json").read_text())
    assert any("no DICOM SR" in w for w in report["studies"][0]["warnings"])
