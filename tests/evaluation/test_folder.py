"""evaluate_folder end to end on a tiny synthetic CT cohort: pairing, skips, files written."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ConfigError, DataError
from medseg.evaluation.folder import evaluate_folder
from medseg.evaluation.lesions import label_lesions
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.volume import Volume
from tests.helpers import validate_evaluation_folder

from .conftest import Cohort, write_predictions, write_run_report


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_manifest_reference_end_to_end(cohort: Cohort, predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    results = list(evaluate_folder(predictions, cohort.manifest, out))
    c0, c1, c2, c3 = cohort.case_ids
    by_id = {r.case_id: r for r in results}
    assert [r.case_id for r in results] == sorted([*cohort.case_ids, "EXTRA"])
    assert [r.index for r in results] == [1, 2, 3, 4, 5] and {r.total for r in results} == {5}
    assert by_id[c0].status == by_id[c1].status == "ok"
    assert by_id[c2].status == "skipped" and c2 in by_id[c2].reason
    assert "affine" in by_id[c2].reason
    assert by_id[c3].status == "skipped" and f"no prediction {c3}.nii.gz" in by_id[c3].reason
    assert by_id["EXTRA"].status == "skipped" and "no reference" in by_id["EXTRA"].reason

    assert sorted(p.name for p in out.iterdir()) == [
        "case_metrics.csv",
        "lesions.csv",
        "summary.json",
        "summary.png",
    ]
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    case_models, lesion_models = validate_evaluation_folder(out)
    assert len(case_models) == 4 and {m.status for m in lesion_models} == {"TP", "FN"}
    assert case_models[3].empty_pred is True and case_models[0].lesion_f1 is None
    rows = read_csv(out / "case_metrics.csv")
    assert [(r["case_id"], r["class"]) for r in rows] == [
        (c0, "organ"),
        (c0, "lesion"),
        (c1, "organ"),
        (c1, "lesion"),
    ]
    lesion_c1 = rows[3]
    assert lesion_c1["dice"] == "0" and lesion_c1["hd95_mm"] == "nan"
    assert lesion_c1["empty_pred"] == "true" and lesion_c1["lesion_fn"] != "0"
    assert rows[0]["lesion_f1"] == ""  # organ is not a lesion class in the manifest
    shift_mm = read_nifti(cohort.labels_dir / f"{c0}.nii.gz").spacing[0]
    assert float(rows[0]["hd_mm"]) == pytest.approx(shift_mm)

    lesions = read_csv(out / "lesions.csv")
    assert {r["status"] for r in lesions if r["case_id"] == c0} == {"TP"}
    assert {r["status"] for r in lesions if r["case_id"] == c1} == {"FN"}
    assert all(r["class"] == "lesion" and r["score"] == "" for r in lesions)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["medseg_version"]
    assert summary["cases"] == {"total": 5, "evaluated": 2, "skipped": 3, "failed": 0}
    assert summary["labels"] == {"1": "organ", "2": "lesion"}
    assert summary["lesion_labels"] == [2]
    hd95 = summary["classes"]["2"]["metrics"]["hd95_mm"]
    assert (hd95["n"], hd95["n_nan"]) == (1, 1)
    dice = summary["classes"]["2"]["metrics"]["dice"]
    assert {"mean", "sd", "median", "q1", "q3", "n", "n_nan"} <= set(dice)
    totals = summary["classes"]["2"]["lesions"]
    assert totals["fn"] >= 1 and totals["froc"] is None and "no scores" in totals["froc_note"]
    assert "lesions" not in summary["classes"]["1"]
    assert {s["case_id"] for s in summary["skipped"]} == {c2, c3, "EXTRA"}


def test_label_folder_reference_with_run_report_names(cohort: Cohort, tmp_path: Path) -> None:
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    write_run_report(pred, {"0": "background", "1": "organ", "2": "lesion"})
    out = tmp_path / "eval"
    results = list(evaluate_folder(pred, cohort.labels_dir, out, lesion_labels=["lesion"]))
    assert {r.status for r in results} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"1": "organ", "2": "lesion"} and summary["lesion_labels"] == [2]
    assert summary["classes"]["1"]["metrics"]["dice"]["mean"] == 1.0
    assert summary["classes"]["2"]["lesions"]["f1"] == 1.0


def test_label_folder_with_labels_json_uses_its_lesion_labels(
    cohort: Cohort, tmp_path: Path
) -> None:
    """``--ref labels/`` reads names and lesion labels from labels.json beside the label maps."""
    assert (cohort.labels_dir / "labels.json").is_file()  # written by medseg synth
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    out = tmp_path / "eval"
    assert {r.status for r in evaluate_folder(pred, cohort.labels_dir, out)} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"1": "organ", "2": "lesion"}
    assert summary["lesion_labels"] == [2]  # not every foreground class
    assert "lesions" not in summary["classes"]["1"] and summary["classes"]["2"]["lesions"]
    rows = read_csv(out / "lesions.csv")
    assert rows and {r["class"] for r in rows} == {"lesion"}


def test_label_folder_without_names_discovers_labels(cohort: Cohort, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    labels_dir = tmp_path / "bare_labels"  # label maps without labels.json
    labels_dir.mkdir()
    for path in cohort.labels_dir.glob("*.nii.gz"):
        shutil.copy(path, labels_dir / path.name)
    for case_id in cohort.case_ids[:2]:
        ref = read_nifti(cohort.labels_dir / f"{case_id}.nii.gz")
        array = np.asarray(ref.array).copy()
        if case_id == cohort.case_ids[1]:
            array[array == 2] = 3  # a class seen in one case only
        write_nifti(ref.with_array(array), pred / f"{case_id}.nii.gz")
    out = tmp_path / "eval"
    results = list(evaluate_folder(pred, labels_dir, out))
    assert [r.status for r in results] == ["ok", "ok", "skipped", "skipped"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"1": "1", "2": "2", "3": "3"}
    assert summary["lesion_labels"] == [1, 2, 3]
    rows = read_csv(out / "case_metrics.csv")
    first_3 = next(r for r in rows if r["case_id"] == cohort.case_ids[0] and r["label"] == "3")
    assert first_3["dice"] == "1" and first_3["empty_pred"] == first_3["empty_ref"] == "true"
    assert first_3["n_ref_lesions"] == "0" and first_3["lesion_f1"] == "1"


def test_instances_and_scores_give_froc(cohort: Cohort, tmp_path: Path) -> None:
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    for case_id in cohort.case_ids:
        ref = read_nifti(cohort.labels_dir / f"{case_id}.nii.gz")
        components = label_lesions(np.asarray(ref.array) == 2, spacing=ref.spacing)
        instances = np.where(components > 0, components + 10, 0).astype(np.int16)
        instances[0, 0, 0] = 9  # a false positive instance
        write_nifti(ref.with_array(instances), pred / f"{case_id}_instances.nii.gz")
        items = [{"instance_id": 9, "label": 2, "score": 0.3}]
        items += [{"instance_id": 10 + i, "label": 2, "score": 0.8} for i in range(1, 9)]
        (pred / f"{case_id}.json").write_text(json.dumps({"instances": items}))
    out = tmp_path / "eval"
    results = list(evaluate_folder(pred, cohort.manifest, out))
    assert {r.status for r in results} == {"ok"}
    assert len(results) == len(cohort.case_ids)  # instance maps are not cases
    lesions = read_csv(out / "lesions.csv")
    assert {(r["status"], r["score"]) for r in lesions} == {("TP", "0.8"), ("FP", "0.3")}
    froc = json.loads((out / "summary.json").read_text())["classes"]["2"]["lesions"]["froc"]
    assert froc["thresholds"] == [None, 0.8, 0.3]
    assert froc["fp_per_case"] == [0.0, 0.0, 1.0] and froc["sensitivity"] == [0.0, 1.0, 1.0]
    assert froc["sensitivity_at_fp"]["0.125"] == 1.0 and froc["score"] == 1.0


def test_unreadable_prediction_is_failed_not_fatal(cohort: Cohort, tmp_path: Path) -> None:
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    (pred / f"{cohort.case_ids[0]}.nii.gz").write_bytes(b"not a nifti file")
    results = list(evaluate_folder(pred, cohort.manifest, tmp_path / "eval"))
    assert results[0].status == "failed" and "cannot read NIfTI" in results[0].reason
    assert {r.status for r in results[1:]} == {"ok"}
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["cases"]["failed"] == 1
    assert not math.isnan(summary["classes"]["1"]["metrics"]["dice"]["mean"])


def test_bad_inputs_raise(cohort: Cohort, predictions: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no predicted label maps"):
        list(evaluate_folder(empty, cohort.manifest, tmp_path / "e1"))
    not_a_ref = tmp_path / "ref.txt"
    not_a_ref.write_text("x")
    with pytest.raises(ConfigError, match="neither a manifest"):
        list(evaluate_folder(predictions, not_a_ref, tmp_path / "e2"))
    with pytest.raises(ConfigError, match=r"unknown lesion label 'tumour'.*lesion"):
        list(
            evaluate_folder(predictions, cohort.manifest, tmp_path / "e3", lesion_labels=["tumour"])
        )


def test_nothing_evaluated_still_writes_outputs(tmp_path: Path) -> None:
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    write_nifti(Volume(np.ones((4, 4, 4), np.uint8), np.eye(4)), ref_dir / "A.nii.gz")
    write_nifti(Volume(np.ones((4, 4, 5), np.uint8), np.eye(4)), pred_dir / "A.nii.gz")
    results = list(evaluate_folder(pred_dir, ref_dir, tmp_path / "eval"))
    assert [r.status for r in results] == ["skipped"] and "shape" in results[0].reason
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["cases"]["evaluated"] == 0 and summary["classes"] == {}
    assert len(read_csv(tmp_path / "eval" / "case_metrics.csv")) == 0
    assert (tmp_path / "eval" / "summary.png").stat().st_size > 0


def test_instance_map_off_grid_is_skipped(cohort: Cohort, tmp_path: Path) -> None:
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    case_id = cohort.case_ids[0]
    ref = read_nifti(cohort.labels_dir / f"{case_id}.nii.gz")
    write_nifti(
        Volume(np.zeros(ref.shape, np.int16), ref.affine * 2), pred / f"{case_id}_instances.nii.gz"
    )
    (pred / f"{case_id}.json").write_text(json.dumps({"instances": []}))
    results = list(evaluate_folder(pred, cohort.manifest, tmp_path / "eval"))
    assert results[0].status == "skipped" and "instance map affine" in results[0].reason
    assert {r.status for r in results[1:]} == {"ok"}
