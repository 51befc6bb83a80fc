"""``medseg report``: exit codes, summary table, --images / --eval / --include-phi pass-through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from medseg.artifacts import CaseMetricsRow, csv_cell, nsd_column
from medseg.cli import app
from tests.reports.conftest import write_predictions

runner = CliRunner()


def test_report_command_writes_reports_and_summary(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "dicom", patients=1)
    write_predictions(root, tmp_path / "pred", modality="CT")
    (tmp_path / "eval").mkdir()
    row = CaseMetricsRow.model_validate(
        {"case_id": "SYNCT0000", "label": 2, "class": "lesion", "dice": 0.8, "iou": 0.67,
         "precision": 0.8, "recall": 0.8, "volume_pred_mm3": 10.0, "volume_ref_mm3": 10.0,
         "volume_diff_mm3": 0.0, "hd_mm": float("nan"), "hd95_mm": 1.0, "assd_mm": 0.5,
         "nsd": 1.0, "empty_pred": False, "empty_ref": False}
    )  # fmt: skip
    cells = row.cells()
    header = ",".join(nsd_column(2.0) if c == "nsd" else c for c in CaseMetricsRow.columns())
    values = ",".join(csv_cell(cells[c]) for c in CaseMetricsRow.columns())
    (tmp_path / "eval" / "case_metrics.csv").write_text(f"{header}\n{values}\n")
    out = tmp_path / "reports"
    args = ["--no-progress", "report", str(tmp_path / "pred"), "-o", str(out),
            "--eval", str(tmp_path / "eval"), "--include-phi"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "SYNCT0000" in result.output and "1 patient, 1 case, 0 failed" in result.output
    html = (out / "SYNCT0000" / "report.html").read_text()
    assert "SYNTHETIC^PATIENT0000" in html and "Agreement with the reference" in html
    assert '<td class="num">0.800</td>' in html  # the Dice of the lesion class
    assert (out / "cohort.csv").is_file()


def test_report_command_exit_1_when_a_case_fails(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "nifti")
    truth = write_predictions(root, tmp_path / "pred", modality="CT", with_run_report=False)
    bad = truth.cases[1].case_id
    (tmp_path / "pred" / f"{bad}.nii.gz").write_bytes(b"garbage")
    missing_eval = tmp_path / "no_eval"  # tolerated: metrics are simply absent
    result = runner.invoke(app, ["--no-progress", "report", str(tmp_path / "pred"), "-o",
                                 str(tmp_path / "out"), "--eval", str(missing_eval)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "1 failed" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / truth.cases[0].case_id / "report.html").is_file()


def test_report_command_empty_folder_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "pred"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no predicted label maps" in lines[0], lines
