"""Helpers for report tests: prediction folders built from synthetic truth labels."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from medseg.artifacts import _CsvRow, csv_cell
from medseg.io.geometry import lps_to_ras_affine
from medseg.io.volume import Volume
from medseg.synth.truth import Truth

RUN_REPORT_BASE: dict[str, Any] = {
    "schema_version": 1,
    "medseg_version": "0.1.0",
    "created": "2024-05-01T10:00:00+00:00",
    "run_dir": "/runs/oct_fluid",
    "model": {"name": "dynunet", "dims": "2d"},
    "checkpoints": [{"path": "/runs/oct_fluid/fold_0/checkpoint_best.pt", "sha256": "ab" * 32,
                     "fold": 0}],
    "versions": {"medseg": "0.1.0", "torch": "2.13.0", "monai": "1.5.0"},
    "device": "cpu",
    "settings": {"tta": False},
}  # fmt: skip


def write_predictions(
    root: Path,
    out: Path,
    *,
    modality: str,
    with_run_report: bool = True,
    case_fields: Iterable[str] = ("patient_id", "study_date", "laterality", "modality", "source"),
) -> Truth:
    """Copy the truth label maps of a synthetic cohort as predictions, with a run report."""
    truth = Truth.load(root / "truth.json")
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for case in truth.cases:
        shutil.copy(root / case.label, out / f"{case.case_id}.nii.gz")
        entry = {
            "case_id": case.case_id, "status": "done", "seconds": 0.1, "error": None,
            "source": str(root / case.image), "patient_id": case.case_id.split("_")[0],
            "study_date": case.study_date, "laterality": case.laterality, "modality": modality,
            "outputs": {"labels": f"{case.case_id}.nii.gz"},
        }  # fmt: skip
        keep = {"case_id", "status", "seconds", "error", "outputs", *case_fields}
        cases.append({k: v for k, v in entry.items() if k in keep})
    if with_run_report:
        report = {**RUN_REPORT_BASE, "labels": truth.labels,
                  "lesion_labels": truth.lesion_labels, "cases": cases}  # fmt: skip
        (out / "run_report.json").write_text(json.dumps(report, indent=2))
    return truth


def write_eval_csv(path: Path, rows: Iterable[dict[str, Any]], schema: type[_CsvRow]) -> Path:
    """An evaluation CSV as ``medseg evaluate`` writes it: schema columns, ``csv_cell`` cells."""
    columns = schema.columns()
    lines = [",".join(columns)]
    for row in rows:
        cells = schema.model_validate(row).cells()
        lines.append(",".join(csv_cell(cells[c]) for c in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def class_row(case_id: str, label: int, name: str, **metrics: float) -> dict[str, Any]:
    """A ``case_metrics.csv`` row: perfect agreement unless ``metrics`` say otherwise."""
    row: dict[str, Any] = {
        "case_id": case_id, "label": label, "class": name, "dice": 1.0, "iou": 1.0,
        "precision": 1.0, "recall": 1.0, "volume_pred_mm3": 1.0, "volume_ref_mm3": 1.0,
        "volume_diff_mm3": 0.0, "hd_mm": 0.0, "hd95_mm": 0.0, "assd_mm": 0.0, "nsd": 1.0,
        "empty_pred": False, "empty_ref": False,
    }  # fmt: skip
    return {**row, **metrics}


@pytest.fixture
def predictions_from() -> Callable[..., Truth]:
    return write_predictions


def oct_volume(
    shape: tuple[int, int, int] = (120, 40, 60),
    spacing: tuple[float, float, float] = (0.05, 0.01, 0.1),
    *,
    eye_x_mm: float = -32.0,
) -> Volume:
    """Empty OCT-like label volume: lateral +x LPS, depth +y LPS, B-scans along -z LPS."""
    sx, sy, sz = spacing
    affine = np.diag([sx, sy, -sz, 1.0])
    affine[:3, 3] = [eye_x_mm - (shape[0] - 1) / 2 * sx, 0.0, (shape[2] - 1) / 2 * sz]
    return Volume(np.zeros(shape, np.uint8), lps_to_ras_affine(affine))


class HTMLChecker(HTMLParser):
    """Checks that tags nest and close, and collects images and external references."""

    VOID: ClassVar[set[str]] = {"area", "base", "br", "col", "embed", "hr", "img", "input",
                                "link", "meta", "source", "track", "wbr"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag in {"script", "link", "iframe", "object", "embed"}:
            self.problems.append(f"<{tag}> present")
        for key in ("src", "href"):
            value = values.get(key) or ""
            if key in values and not value.startswith(("data:image/png;base64,", "#")):
                self.problems.append(f"external {key}={value[:40]!r}")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def check_html(text: str) -> HTMLChecker:
    checker = HTMLChecker()
    checker.feed(text)
    checker.close()
    if checker.stack:
        checker.problems.append(f"unclosed tags {checker.stack}")
    return checker
