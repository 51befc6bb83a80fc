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
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.artifacts import CaseMetricsRow, LesionRow, csv_cell
from medseg.evaluation.evaluate import CaseMetrics, EvaluationOptions
from medseg.evaluation.summary import build_summary
from medseg.io.atomic import atomic_path, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from medseg.evaluation.folder import CaseEvaluation

CASE_COLUMNS = CaseMetricsRow.columns()
LESION_COLUMNS = LesionRow.columns()


def _csv_text(columns: Sequence[str], rows: Sequence[CaseMetricsRow | LesionRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = row.cells()
        writer.writerow([csv_cell(cells[c]) for c in columns])
    return buffer.getvalue()


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
                        }
                    )
                )
    return rows


def plot_summary(path: Path, cases: Sequence[CaseMetrics], labels: dict[int, str]) -> Path:
    """Box plots of Dice and HD95 per class (NaN left out), PNG via matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.6 * len(labels) + 3), 4.0), dpi=100)
    FigureCanvasAgg(figure)
    names = [labels[v] for v in labels]
    for position, (metric, title) in enumerate((("dice", "Dice"), ("hd95_mm", "HD95 (mm)")), 1):
        axes = figure.add_subplot(1, 2, position)
        axes.set_title(f"{title}, n = {len(cases)} cases")
        if not labels or not cases:
            axes.text(0.5, 0.5, "no evaluated cases", ha="center", va="center")
            continue
        data = []
        for label in labels:
            values = [getattr(c.classes[label], metric) for c in cases]
            data.append([v for v in values if not math.isnan(v)])
        axes.boxplot(data, tick_labels=names, showmeans=True)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


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
    write_text_atomic(out_dir / "case_metrics.csv", _csv_text(CASE_COLUMNS, case_rows(cases)))
    write_text_atomic(out_dir / "lesions.csv", _csv_text(LESION_COLUMNS, lesion_rows(cases)))
    write_json_atomic(out_dir / "summary.json", summary)
    plot_summary(out_dir / "summary.png", cases, labels)
    return summary


def load_summary(eval_dir: Path) -> dict[str, Any]:
    """Read ``summary.json`` of an evaluation folder."""
    return dict(json.loads((Path(eval_dir) / "summary.json").read_text(encoding="utf-8")))
