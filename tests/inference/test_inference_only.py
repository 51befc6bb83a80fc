"""Inference-only manifests: unlabelled scans build a manifest that predict and report accept."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.errors import DataError
from medseg.manifest.schema import load_manifest
from medseg.training.data import split_fold


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--no-progress", *args])
    return result.exit_code, result.output


def test_unlabelled_scans_build_predict_report_and_evaluate(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    root = synth_dir("oct", "dicom", patients=3)
    scans = tmp_path / "scans"
    shutil.copytree(root / "images", scans)
    manifest_path = tmp_path / "todo.json"
    code, output = _cli("manifest", "build", str(scans), "-o", str(manifest_path))
    assert code == 0, output  # used to be "1 folds need at least 1 labelled training patients"
    manifest = load_manifest(manifest_path)
    assert len(manifest.cases) >= 3 and manifest.n_folds == 1
    assert {(c.split, c.fold, c.label) for c in manifest.cases} == {("test", None, None)}
    assert all(any(i.code == "no_label" for i in c.issues) for c in manifest.cases)
    code, output = _cli("manifest", "check", str(manifest_path))
    assert code == 0, output
    with pytest.raises(DataError, match="no labelled training cases"):
        split_fold(manifest, 0)

    pred = tmp_path / "pred"
    code, output = _cli("predict", str(trained_run), str(manifest_path), "-o", str(pred))
    assert code == 0, output
    report = json.loads((pred / "run_report.json").read_text())
    assert {c["case_id"] for c in report["cases"]} == {c.case_id for c in manifest.cases}
    assert {c["status"] for c in report["cases"]} == {"done"}

    code, output = _cli(
        "report", str(pred), "-o", str(tmp_path / "r"), "--images", str(manifest_path)
    )
    assert code == 0, output
    for case in manifest.cases:
        data = json.loads((tmp_path / "r" / case.patient_id / "report.json").read_text())
        assert case.case_id in {s["case_id"] for s in data["studies"]}

    code, output = _cli(
        "evaluate", str(pred), "--ref", str(manifest_path), "-o", str(tmp_path / "e")
    )
    assert code == 2 and "inference-only manifest" in output, output
    code, output = _cli(
        "evaluate", str(pred), "--ref", str(root / "labels"), "-o", str(tmp_path / "e")
    )
    assert code == 0, output
    with (tmp_path / "e" / "case_metrics.csv").open(newline="") as handle:
        evaluated = {row["case_id"] for row in csv.DictReader(handle)}
    assert evaluated == {c.case_id for c in manifest.cases}
