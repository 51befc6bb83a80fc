"""The files of an evaluation folder: ``case_metrics.csv``, ``lesions.csv``, ``summary.json``,
``summary.png``. Each is written to a temporary name and renamed (never half-written).

CSV columns and conventions are :class:`medseg.artifacts.CaseMetricsRow` and
:class:`~medseg.artifacts.LesionRow`: one header row; NaN is written ``nan``, not-applicable values
are empty (e.g. lesion columns of non-lesion classes, the score of a missed lesion); floats with 10
significant digits.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medseg.artifacts import LOCATION_COLUMNS, CaseMetricsRow, LesionRow, csv_cell, nsd_column
from medseg.evaluation.evaluate import CaseMetrics, EvaluationOptions
from medseg.evaluation.locations import LesionLocation
from medseg.evaluation.plots import plot_summary
from medseg.evaluation.summary import build_summary
from medseg.io.atomic import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from medseg.evaluation.folder import CaseEvaluation

CASE_COLUMNS = CaseMetricsRow.columns()
LESION_COLUMNS = LesionRow.columns()


def _csv_text(
    columns: Sequence[str],
    rows: Sequence[CaseMetricsRow | LesionRow],
    header: Sequence[str] | None = None,
) -> str:
    """CSV text of ``rows`` (cells by ``columns``) under ``header`` (default: the columns)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header or columns)
    for row in rows:
        cells = row.cells()
        writer.writerow([csv_cell(cells[c]) for c in columns])
    return buffer.getvalue()


def case_header(nsd_tolerance_mm: float) -> tuple[str, ...]:
    """The ``case_metrics.csv`` header: the NSD column names its tolerance (``nsd_1.0mm``)."""
    return tuple(nsd_column(nsd_tolerance_mm) if c == "nsd" else c for c in CASE_COLUMNS)


def location_cells(
    location: LesionLocation | None, affine: npt.NDArray[np.float64] | None
) -> dict[str, Any]:
    """``LOCATION_COLUMNS`` cells of one lesion (none where unknown, e.g. without an affine)."""
    if location is None:
        return {}
    voxel = list(location.centroid_voxel) + [None] * (3 - len(location.centroid_voxel))
    cells: dict[str, Any] = dict(zip(LOCATION_COLUMNS[3:6], voxel))
    cells |= {"slice_first": location.slice_first, "slice_last": location.slice_last}
    if affine is not None:
        cells |= dict(zip(LOCATION_COLUMNS[:3], location.centroid_lps_mm(affine)))
    return cells


def case_rows(cases: Sequence[CaseMetrics]) -> list[CaseMetricsRow]:
    """One row per case and class (:class:`~medseg.artifacts.CaseMetricsRow`)."""
    rows = []
    for case in cases:
        for label, metrics in sorted(case.classes.items()):
            row: dict[str, Any] = {"case_id": case.case_id, "label": label}
            row["class"] = case.labels.get(label, str(label))
            row.update(metrics.to_dict())
            if label in case.lesions:
                s = case.lesions[label].scores
                row.update(
                    n_ref_lesions=s.n_ref,
                    n_pred_lesions=s.n_pred,
                    lesion_tp=s.tp,
                    lesion_fp=s.fp,
                    lesion_fn=s.fn,
                    lesion_sensitivity=s.sensitivity,
                    lesion_precision=s.precision,
                    lesion_f1=s.f1,
                    lesion_dice=s.lesion_dice,
                    lesion_pq=s.pq,
                )
            rows.append(CaseMetricsRow.model_validate(row))
    return rows


def lesion_rows(cases: Sequence[CaseMetrics]) -> list[LesionRow]:
    """One row per matched (TP), missed (FN) or false (FP) lesion (:class:`LesionRow`)."""
    rows = []
    for case in cases:
        for label, evaluation in sorted(case.lesions.items()):
            for m in evaluation.matches:
                rows.append(
                    LesionRow.model_validate(
                        {
                            "case_id": case.case_id,
                            "label": label,
                            "class": case.labels.get(label, str(label)),
                            "status": m.status,
                            "ref_lesion_id": m.ref_id,
                            "pred_lesion_id": m.pred_id,
                            "ref_volume_mm3": m.ref_volume_mm3,
                            "pred_volume_mm3": m.pred_volume_mm3,
                            "iou": m.iou,
                            "dice": m.dice,
                            "score": m.score,
                            **location_cells(evaluation.location(m), case.affine),
                        }
                    )
                )
    return rows


def _final_labels(
    cases: Sequence[CaseMetrics],
    plan_labels: dict[int, str] | None,
    wanted: Sequence[int] | None,
    default_lesions: Sequence[int] | None,
) -> tuple[dict[int, str], list[int]]:
    if plan_labels is not None:
        labels = dict(plan_labels)
    else:
        found = {v for c in cases for v in c.classes} | set(wanted or ())
        labels = {v: str(v) for v in sorted(found)}
    if wanted is not None:
        lesions = [v for v in wanted if v in labels]
    elif default_lesions is not None:
        lesions = list(default_lesions)
    else:
        lesions = list(labels)
    return labels, lesions


def write_outputs(
    out_dir: Path,
    results: Sequence[CaseEvaluation],
    *,
    plan_labels: dict[int, str] | None,
    lesion_labels: Sequence[int] | None,
    default_lesion_labels: Sequence[int] | None,
    options: EvaluationOptions,
    pred_dir: Path,
    ref: Path,
) -> dict[str, Any]:
    """Write the four evaluation files; return the summary document."""
    from medseg.evaluation.folder import complete_classes

    evaluated = [r.metrics for r in results if r.metrics is not None]
    labels, lesions = _final_labels(evaluated, plan_labels, lesion_labels, default_lesion_labels)
    cases = [complete_classes(c, labels, lesions, options) for c in evaluated]
    problems = [
        {"case_id": r.case_id, "status": r.status, "reason": r.reason}
        for r in results
        if r.status != "ok"
    ]
    summary = build_summary(
        cases,
        problems,
        labels=labels,
        lesion_labels=lesions,
        options=options,
        pred_dir=pred_dir,
        ref=ref,
        n_total=len(results),
    )
    header = case_header(options.nsd_tolerance_mm)
    write_text_atomic(
        out_dir / "case_metrics.csv", _csv_text(CASE_COLUMNS, case_rows(cases), header)
    )
    write_text_atomic(out_dir / "lesions.csv", _csv_text(LESION_COLUMNS, lesion_rows(cases)))
    write_json_atomic(out_dir / "summary.json", summary)
    plot_summary(out_dir / "summary.png", cases, labels)
    return summary


def load_summary(eval_dir: Path) -> dict[str, Any]:
    """Read ``summary.json`` of an evaluation folder."""
    return dict(json.loads((Path(eval_dir) / "summary.json").read_text(encoding="utf-8")))
