"""``medseg demo --quick`` end to end: every artifact exists and validates; a rerun skips stages."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config.load import load_resolved
from medseg.io.read import read_volume
from medseg.manifest.schema import load_manifest
from medseg.reports.schema import PatientReport
from medseg.training.checkpoint import load_checkpoint


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["--no-progress", "demo", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_demo_prints_metrics_and_cohort_report(demo: tuple[Path, str]) -> None:
    out, output = demo
    assert "test-set metrics" in output and "all fluid" in output
    assert "SMOKE RUN" in output and "not a model" in output  # a one-minute model is labelled
    assert f"cohort report: {out / 'run' / 'reports' / 'index.html'}" in output.replace("\n", "")


def test_demo_artifacts_validate(demo: tuple[Path, str]) -> None:
    out, _ = demo
    run = out / "run"
    manifest = load_manifest(out / "data_manifests" / "oct_demo.json")
    test_cases = [c for c in manifest.cases if c.split == "test"]
    assert test_cases and any(c.split == "train" for c in manifest.cases)
    assert load_resolved(run / "resolved_workflow.yaml").plan.modality == "OPT"
    assert load_checkpoint(run / "fold_0" / "checkpoint_best.pt")["labels"]["2"] == "SRF"
    report = json.loads((run / "predictions" / "run_report.json").read_text())
    assert {c["case_id"] for c in report["cases"]} == {c.case_id for c in test_cases}
    assert all(c["status"] == "done" for c in report["cases"])
    for case in test_cases:
        pred = read_volume(run / "predictions" / f"{case.case_id}.nii.gz")
        source = manifest.read_image(case)
        assert pred.shape == source.shape and np.allclose(pred.affine, source.affine, atol=1e-5)
        seg = hd.seg.segread(run / "predictions" / f"{case.case_id}.seg.dcm")
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["IRF", "SRF"]
        assert (run / "predictions" / f"{case.case_id}.png").stat().st_size > 1000
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    assert summary["cases"]["evaluated"] == len(test_cases)
    for name in ("case_metrics.csv", "lesions.csv", "summary.png"):
        assert (run / "evaluation" / name).is_file()
    cohort = list(csv.DictReader((run / "reports" / "cohort.csv").open()))
    assert {row["case_id"] for row in cohort} == {c.case_id for c in test_cases}
    for patient in {c.patient_id for c in test_cases}:
        folder = run / "reports" / patient
        report = PatientReport.model_validate_json((folder / "report.json").read_text())
        assert (report.provenance.notice or "").startswith("Smoke run")  # said in every report
        assert '<div class="notice">Smoke run' in (folder / "report.html").read_text()
        parser = _Links()
        parser.feed((folder / "report.html").read_text())
        assert "table" in parser.tags and "img" in parser.tags
        assert all(
            ref.startswith("data:image/png;base64,") or not ref.startswith(("http", "//"))
            for ref in parser.refs
        )
    index = _Links()
    index.feed((run / "reports" / "index.html").read_text())
    assert '<div class="notice">Smoke run' in (run / "reports" / "index.html").read_text()
    assert {f"{c.patient_id}/report.html" for c in test_cases} <= set(index.refs)


def test_rerun_skips_up_to_date_stages(demo: tuple[Path, str]) -> None:
    out, _ = demo
    result = CliRunner().invoke(app, ["--no-progress", "demo", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for stage in ("plan", "train", "predict", "evaluate", "report"):
        assert any(
            line.split()[:3] == [stage, "up", "to"] for line in result.output.splitlines()
        ), result.output
