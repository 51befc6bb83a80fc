"""Pseudonymisation: patient ids never reach the manifest, predictions or their logs."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.manifest.pseudonym import pseudonym


def _build(tmp_path: Path, root: Path, name: str, *extra: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(
        app,
        [
            "--no-progress",
            "manifest",
            "build",
            str(root / "images"),
            "--labels",
            str(root / "labels"),
            "-o",
            str(tmp_path / name),
            "--folds",
            "2",
            *extra,
        ],
        env=env,
    )


def test_manifest_pseudonyms(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("oct", "dicom", patients=3)
    result = _build(tmp_path, root, "a.json", "--pseudonymize", "--pseudonym-key", "k1")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "a.json").read_text()
    manifest = json.loads(text)
    assert all(
        c["patient_id"].startswith("P") and "SYNOCT" not in c["case_id"] for c in manifest["cases"]
    )
    assert all(c["label"] for c in manifest["cases"])  # labels were paired before renaming
    rows = list(csv.DictReader((tmp_path / "a.pseudonyms.csv").open()))
    assert {r["pseudonym"] for r in rows} == {c["patient_id"] for c in manifest["cases"]}
    assert all(pseudonym(r["patient_id"], "k1") == r["pseudonym"] for r in rows)
    again = _build(tmp_path, root, "b.json", "--pseudonymize", env={"MEDSEG_PSEUDONYM_KEY": "k1"})
    assert again.exit_code == 0
    assert [c["case_id"] for c in json.loads((tmp_path / "b.json").read_text())["cases"]] == [
        c["case_id"] for c in manifest["cases"]
    ]
    other = _build(tmp_path, root, "c.json", "--pseudonymize", "--pseudonym-key", "k2")
    assert other.exit_code == 0
    assert {
        c["patient_id"] for c in json.loads((tmp_path / "c.json").read_text())["cases"]
    }.isdisjoint({c["patient_id"] for c in manifest["cases"]})


def test_key_is_required(
    tmp_path: Path, synth_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDSEG_PSEUDONYM_KEY", raising=False)
    result = _build(tmp_path, synth_dir("oct", "dicom", patients=3), "a.json", "--pseudonymize")
    assert result.exit_code == 2
    assert "pseudonymisation needs a key" in result.output


def test_predict_pseudonymizes_folder_inputs(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    root = synth_dir("oct", "dicom", patients=3)
    out = tmp_path / "preds"
    result = CliRunner().invoke(
        app,
        [
            "-v",
            "--no-progress",
            "predict",
            str(trained_run),
            str(root / "images"),
            "-o",
            str(out),
            "--pseudonymize",
            "--pseudonym-key",
            "k1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "SYNOCT" not in result.output  # neither the table nor the (debug) log names patients
    assert all("SYNOCT" not in p.name for p in out.iterdir() if p.name != "pseudonyms.csv")
    report = json.loads((out / "run_report.json").read_text())
    assert all(c["patient_id"].startswith("P") for c in report["cases"])
