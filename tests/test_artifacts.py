"""Artifact schemas: the one reading of run_report.json, <case>.json and the evaluation CSVs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from medseg.artifacts import (
    CaseMetricsRow,
    LesionRow,
    RunReport,
    canonical_column,
    nsd_column,
    read_instances_file,
    read_run_report,
)
from medseg.errors import DataError
from medseg.evaluation.summary import CLASS_METRICS
from medseg.reports.eval_results import load_evaluation


def test_old_run_report_status_skipped_reads_as_reused(tmp_path: Path) -> None:
    """Reports of earlier versions wrote ``skipped`` for cases whose outputs were kept."""
    rows = [{"case_id": "a", "status": "skipped"}, {"case_id": "b", "status": "done"}]
    (tmp_path / "run_report.json").write_text(json.dumps({"cases": rows}))
    report = read_run_report(tmp_path / "run_report.json")
    assert [c.status for c in report.cases] == ["reused", "done"]
    assert RunReport.count(report.cases) == {"done": 1, "reused": 1, "partial": 0, "failed": 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"cases": [{"case_id": "a", "status": "missing"}]}', "cases.0.status"),
        ('{"labels": {"one": "x"}}', "label keys must be integers"),
        ('{"lables": {}}', "lables"),
        ("[1, 2", "unreadable run_report.json"),
    ],
)
def test_run_report_that_is_not_one_names_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "run_report.json").write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_run_report(tmp_path / "run_report.json")
    assert str(tmp_path / "run_report.json") in str(info.value)


def test_instance_list_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"instances": [{"instance_id": 1, "label": 2, "score": 0.5}]}))
    (record,) = read_instances_file(path).instances
    assert (record.instance_id, record.label, record.score, record.n_voxels) == (1, 2, 0.5, None)
    path.write_text(json.dumps({"instances": [{"instance_id": 0, "label": 2}]}))
    with pytest.raises(DataError, match=r"instances\.0\.instance_id"):
        read_instances_file(path)


def test_case_metrics_columns_cover_every_class_metric() -> None:
    columns = CaseMetricsRow.columns()
    assert columns[:3] == ("case_id", "label", "class")
    assert set(CLASS_METRICS) <= set(columns)
    assert LesionRow.columns()[:4] == ("case_id", "label", "class", "status")


def test_report_reader_does_not_guess_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CSV with other column names is not read half-way: it is named and ignored (reports take
    the per-class lesion counts from case_metrics.csv; lesions.csv is not needed)."""
    (tmp_path / "case_metrics.csv").write_text("case_id,label_name,dice\nA,lesion,0.9\n")
    with caplog.at_level(logging.WARNING):
        assert load_evaluation(tmp_path) == {}
    assert "case_metrics.csv is not usable" in caplog.text and "'hd95_mm'" in caplog.text


def test_nsd_column_names_its_tolerance() -> None:
    row = CaseMetricsRow.model_validate(
        {"case_id": "A", "label": 1, "class": "x", "dice": 1, "iou": 1, "precision": 1,
         "recall": 1, "volume_pred_mm3": 1, "volume_ref_mm3": 1, "volume_diff_mm3": 0,
         "hd_mm": 0, "hd95_mm": 0, "assd_mm": 0, "nsd_2.5mm": 0.75, "empty_pred": "false",
         "empty_ref": "false"}
    )  # fmt: skip
    assert row.nsd == 0.75
    assert nsd_column(2.5) == "nsd_2.5mm" and canonical_column("nsd_2.5mm") == "nsd"
