"""End to end on tiny synthetic cohorts: prediction folder -> report folders and cohort.csv."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medseg.artifacts import CaseMetricsRow
from medseg.manifest.schema import Case, Manifest, save_manifest
from medseg.reports import PatientReport, load_prediction_set, write_reports
from medseg.reports.inputs import normalize_date
from medseg.synth.truth import Truth
from tests.reports.conftest import check_html, class_row, write_eval_csv, write_predictions

PHI_MARKERS = ("SYNTHETIC", "PATIENT0000", "19500115")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


@pytest.fixture(scope="module")
def oct_run(
    synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Truth, Path, list, list[str]]]:
    """Two OCT patients (DICOM), two visits each, reported without --include-phi."""
    root = synth_dir("oct", "dicom", visits=2)
    pred = tmp_path_factory.mktemp("pred_oct")
    truth = write_predictions(root, pred, modality="OPT")
    out = tmp_path_factory.mktemp("reports_oct")
    logger, capture = logging.getLogger("medseg"), _Capture()
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        outcomes = list(write_reports(load_prediction_set(pred), out))
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    yield truth, out, outcomes, capture.messages


def test_every_case_done_and_files_written(oct_run: tuple) -> None:
    truth, out, outcomes, _ = oct_run
    assert [o.case_id for o in outcomes] == [c.case_id for c in truth.cases]
    assert all(o.status == "done" for o in outcomes), outcomes
    for patient in truth.patients:
        folder = out / patient.patient_id
        assert {p.name for p in folder.iterdir()} == {"report.json", "report.html", "lesions.csv"}
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]


def test_report_json_validates_and_matches_truth(oct_run: tuple) -> None:
    truth, out, _, _ = oct_run
    schema = PatientReport.model_json_schema()
    assert {"schema_version", "patient_id", "studies", "changes", "provenance"} <= set(
        schema["properties"]
    )
    for patient in truth.patients:
        report = PatientReport.model_validate_json(
            (out / patient.patient_id / "report.json").read_text()
        )
        assert report.schema_version == 2 and report.patient_id == patient.patient_id
        assert report.provenance.checkpoints[0].sha256 == "ab" * 32
        assert report.provenance.model["name"] == "dynunet"
        assert report.labels["1"] == "IRF" and report.personal_data is None
        expected = {c.case_id: c for c in patient.cases}
        for study in report.studies:
            case = expected[study.case_id]
            assert study.laterality == case.laterality
            assert study.study_date == normalize_date(case.study_date)  # ISO YYYY-MM-DD
            assert len(study.lesions) == len(case.lesions)
            truth_nl = sum(les.volume_mm3 for les in case.lesions) * 1000
            assert sum(t.volume_nl or 0 for t in study.totals) == pytest.approx(truth_nl)
            assert study.oct is not None and study.oct.fovea.method == "ilm_surface"
            assert study.image_used
        eyes = {s.laterality for s in report.studies}
        assert {r.series for r in report.changes} == eyes  # 2 visits per eye: a change table
        assert len(report.changes) == 2 * len(report.studies)  # IRF and SRF rows per study


def test_html_is_valid_self_contained_with_table_and_figures(oct_run: tuple) -> None:
    truth, out, _, _ = oct_run
    for patient in truth.patients:
        html = (out / patient.patient_id / "report.html").read_text()
        checker = check_html(html)
        assert not checker.problems, checker.problems[:5]
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # figures aside
        assert "http" not in text.lower() and "url(" not in text and "@import" not in text
        assert "<script" not in text.lower() and "<link" not in text.lower()
        assert checker.images and all(
            s.startswith("data:image/png;base64,") for s in checker.images
        )
        assert 'class="lesions"' in html and "Change over time" in html
        assert "ETDRS" in html and patient.patient_id in html


def test_cohort_and_lesion_tables(oct_run: tuple) -> None:
    truth, out, _, _ = oct_run
    with (out / "cohort.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["patient_id"], r["case_id"]) for r in rows] == [
        (p.patient_id, c.case_id) for p in truth.patients for c in p.cases
    ]
    assert all(r["status"] == "done" and r["fovea_method"] == "ilm_surface" for r in rows)
    for patient in truth.patients:
        with (out / patient.patient_id / "lesions.csv").open() as handle:
            lesions = list(csv.DictReader(handle))
        assert len(lesions) == sum(len(c.lesions) for c in patient.cases)
        assert all(r["etdrs_subfield"] and float(r["volume_nl"]) > 0 for r in lesions)
        assert {r["intensity_unit"] for r in lesions} <= {"a.u."}  # OCT: the image's own units
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["study_date"]) for r in lesions)  # ISO


def test_no_personal_data_without_include_phi(oct_run: tuple) -> None:
    _, out, _, messages = oct_run
    assert messages  # the run logged something
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not [m for m in PHI_MARKERS if m in text], path
    assert not [m for m in PHI_MARKERS for line in messages if m in line]


def test_include_phi_reads_dicom_headers(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    root = synth_dir("ct", "dicom", patients=1)
    write_predictions(root, tmp_path / "pred", modality="CT")
    out = tmp_path / "reports"
    outcomes = list(write_reports(load_prediction_set(tmp_path / "pred"), out, include_phi=True))
    assert [o.status for o in outcomes] == ["done"]
    report = PatientReport.model_validate_json((out / "SYNCT0000" / "report.json").read_text())
    assert report.personal_data is not None
    assert report.personal_data.patient_name == "SYNTHETIC^PATIENT0000"
    assert report.personal_data.birth_date == "19500115"
    assert "SYNTHETIC^PATIENT0000" in (out / "SYNCT0000" / "report.html").read_text()
    assert report.studies[0].oct is None and report.studies[0].lesions  # CT: no ETDRS
    assert "SYNTHETIC" not in (out / "cohort.csv").read_text()


def test_fallbacks_without_run_report(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    """No run report: metadata from a manifest, then defaults (patient = case id)."""
    root = synth_dir("ct", "nifti")
    truth = write_predictions(root, tmp_path / "pred", modality="CT", with_run_report=False)
    first, second = truth.cases[0], truth.cases[1]
    manifest = Manifest(
        name="ct", data_root=str(root), labels=truth.labels, lesion_labels=[2],
        cases=[Case(case_id=first.case_id, patient_id="PSEUDO-7", study_date="20230101",
                    modality="CT", images={"image": first.image})],
    )  # fmt: skip
    save_manifest(manifest, tmp_path / "manifest.json")
    predictions = load_prediction_set(tmp_path / "pred", images=tmp_path / "manifest.json")
    by_id = {c.case_id: c for c in predictions.cases}
    assert by_id[first.case_id].patient_id == "PSEUDO-7"
    assert by_id[second.case_id].patient_id == second.case_id  # not in the manifest
    assert predictions.lesion_labels == [2] and predictions.label_names[2] == "lesion"
    list(write_reports(predictions, tmp_path / "out"))
    assert (tmp_path / "out" / "PSEUDO-7" / "report.json").is_file()
    bare = load_prediction_set(tmp_path / "pred")
    assert bare.label_names == {} and bare.lesion_labels is None
    list(write_reports(bare, tmp_path / "bare"))
    report = PatientReport.model_validate_json(
        (tmp_path / "bare" / first.case_id / "report.json").read_text()
    )
    names = {t.label_name for t in report.studies[0].totals}
    assert names == {"label_1", "label_2"}  # every foreground class counts as a lesion class
    assert report.studies[0].study_date is None and not report.studies[0].image_used


def test_bad_case_is_reported_and_others_go_on(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "nifti")
    truth = write_predictions(root, tmp_path / "pred", modality="CT")
    bad, good = truth.cases[0].case_id, truth.cases[1].case_id
    (tmp_path / "pred" / f"{bad}.nii.gz").write_bytes(b"not a nifti")
    run = json.loads((tmp_path / "pred" / "run_report.json").read_text())
    run["cases"].append({"case_id": "LOST", "status": "failed", "error": "out of memory"})
    (tmp_path / "pred" / "run_report.json").write_text(json.dumps(run))
    outcomes = {o.case_id: o for o in write_reports(load_prediction_set(tmp_path / "pred"),
                                                     tmp_path / "out")}  # fmt: skip
    assert outcomes[bad].status == "failed" and f"{bad}.nii.gz" in (outcomes[bad].error or "")
    assert outcomes[good].status == "done" and outcomes["LOST"].status == "not_predicted"
    report = json.loads((tmp_path / "out" / bad.split("_")[0] / "report.json").read_text())
    assert report["studies"][0]["status"] == "failed"
    html = (tmp_path / "out" / "LOST" / "report.html").read_text()
    assert "out of memory" in html and not check_html(html).problems


def test_instances_and_evaluation_metrics(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    root = synth_dir("ct", "nifti")
    truth = write_predictions(root, tmp_path / "pred", modality="CT")
    case = truth.cases[0]
    shutil.copy(root / case.label, tmp_path / "pred" / f"{case.case_id}_instances.nii.gz")
    (tmp_path / "pred" / f"{case.case_id}.json").write_text(json.dumps(
        {"instances": [{"instance_id": 1, "label": 1, "score": 0.75},
                       {"instance_id": 2, "label": 2, "score": 0.5}]}))  # fmt: skip
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    write_eval_csv(
        evaluation / "case_metrics.csv",
        [class_row(case.case_id, 1, "organ", hd95_mm=float("nan")),
         class_row(case.case_id, 2, "lesion", dice=0.91, hd95_mm=2.5, lesion_tp=1, lesion_fp=0,
                   lesion_fn=1, lesion_f1=2 / 3)],
        CaseMetricsRow,
    )  # fmt: skip
    list(
        write_reports(load_prediction_set(tmp_path / "pred"), tmp_path / "out", eval_dir=evaluation)
    )
    pid = case.case_id.split("_")[0]
    report = PatientReport.model_validate_json((tmp_path / "out" / pid / "report.json").read_text())
    study = report.studies[0]
    assert {les.instance_id for les in study.lesions} == {1, 2}  # label map values as instances
    assert sorted(les.score for les in study.lesions) == [0.5, 0.75]
    organ, lesion = study.evaluation
    assert (organ.label_name, organ.dice, organ.hd95_mm, organ.lesion_tp) == (
        "organ",
        1.0,
        None,
        None,
    )
    assert (lesion.dice, lesion.hd95_mm) == (0.91, 2.5)  # NaN HD95 above became None
    assert (lesion.lesion_tp, lesion.lesion_fp, lesion.lesion_fn) == (1, 0, 1)
    assert "lesion_dice" in (tmp_path / "out" / "cohort.csv").read_text()
    html = (tmp_path / "out" / pid / "report.html").read_text()
    start = html.index("Agreement with the reference")
    section = html[start : html.index("</dl>", start)]
    assert "0.910" in section and "not a lesion class" in section
    assert not re.search(r"\bnan\b", section, re.I)  # undefined HD95 shows as –


def test_laterality_and_modality_from_the_dicom_header(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("oct", "dicom", patients=1)
    write_predictions(root, tmp_path / "pred", modality="OPT", case_fields=("source",))
    predictions = load_prediction_set(tmp_path / "pred")
    assert all(c.laterality is None and c.modality is None for c in predictions.cases)
    case = predictions.cases[0]
    list(write_reports(predictions, tmp_path / "out"))
    report = PatientReport.model_validate_json(
        (tmp_path / "out" / case.case_id / "report.json").read_text()
    )
    study = report.studies[0]
    assert study.modality == "OPT" and study.laterality == case.case_id.split("_")[1]
    assert study.oct is not None and study.oct.laterality_source == "metadata"


@pytest.mark.parametrize(
    ("value", "expected"), [("R", "OD"), ("left", "OS"), ("OD", "OD"), ("", None), ("X", None)]
)
def test_normalize_laterality(value: str, expected: str | None) -> None:
    from medseg.reports.inputs import normalize_laterality

    assert normalize_laterality(value) == expected


def test_normalize_date() -> None:
    from medseg.reports.inputs import normalize_date

    assert normalize_date("2024-01-15T10:00") == "2024-01-15"
    assert normalize_date("20240115") == "2024-01-15"
    assert normalize_date("Jan 2024") == "Jan 2024"
    assert normalize_date(None) is None


def test_patient_ids_that_clash_as_folder_names_get_their_own_folder(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "nifti")
    write_predictions(root, tmp_path / "pred", modality="CT")
    run = json.loads((tmp_path / "pred" / "run_report.json").read_text())
    run["cases"][0]["patient_id"], run["cases"][1]["patient_id"] = "A/B", "A_B"
    (tmp_path / "pred" / "run_report.json").write_text(json.dumps(run))
    import medseg

    list(medseg.write_reports(medseg.load_prediction_set(tmp_path / "pred"), tmp_path / "out"))
    ids = {
        json.loads((tmp_path / "out" / name / "report.json").read_text())["patient_id"]
        for name in ("A_B", "A_B_2")
    }
    assert ids == {"A/B", "A_B"}


def test_two_jobs_write_the_same_reports(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    root = synth_dir("ct", "nifti")
    write_predictions(root, tmp_path / "pred", modality="CT")
    predictions = load_prediction_set(tmp_path / "pred")
    serial = list(write_reports(predictions, tmp_path / "one"))
    parallel = list(write_reports(predictions, tmp_path / "two", jobs=2))
    assert sorted(o.case_id for o in parallel) == sorted(o.case_id for o in serial)
    assert (tmp_path / "one" / "cohort.csv").read_text() == (
        tmp_path / "two" / "cohort.csv"
    ).read_text()
    for case in predictions.cases:
        one = json.loads((tmp_path / "one" / case.patient_id / "report.json").read_text())
        two = json.loads((tmp_path / "two" / case.patient_id / "report.json").read_text())
        assert one["studies"] == two["studies"]
