"""Read an evaluation folder (``medseg evaluate``) into per-case, per-class agreement, tolerating
its absence.

``case_metrics.csv`` (:class:`~medseg.artifacts.CaseMetricsRow`) has one row per case and class;
each becomes a :class:`~medseg.reports.schema.ClassEvaluation` (Dice, HD95, lesion TP/FP/FN and
F1; undefined values, NaN in the file, become ``None``). A missing file is logged and skipped; a
file that does not follow its schema is logged and ignored as a whole.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from pydantic import ValidationError

from medseg.artifacts import CaseMetricsRow, canonical_column
from medseg.reports.schema import ClassEvaluation
from medseg.types import PathLike

logger = logging.getLogger(__name__)

CASE_METRICS = "case_metrics.csv"


def _required_columns() -> set[str]:
    fields = CaseMetricsRow.model_fields
    return {f.alias or name for name, f in fields.items() if f.is_required()}


def _rows(path: Path) -> list[CaseMetricsRow]:
    if not path.is_file():
        logger.info("evaluation file %s not found; skipped", path.name)
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            found = {canonical_column(c) for c in reader.fieldnames or ()}
            missing = _required_columns() - found
            if missing:
                raise ValueError(f"columns {sorted(missing)} missing")
            return [CaseMetricsRow.model_validate(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, ValidationError) as err:
        logger.warning("evaluation file %s is not usable (%s); ignored", path.name, err)
        return []


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def class_evaluation(row: CaseMetricsRow) -> ClassEvaluation:
    """The report's view of one ``case_metrics.csv`` row."""
    return ClassEvaluation(
        label=row.label,
        label_name=row.class_name,
        dice=_finite(row.dice),
        hd95_mm=_finite(row.hd95_mm),
        empty_pred=row.empty_pred,
        empty_ref=row.empty_ref,
        lesion_tp=row.lesion_tp,
        lesion_fp=row.lesion_fp,
        lesion_fn=row.lesion_fn,
        lesion_f1=_finite(row.lesion_f1),
    )


def load_evaluation(eval_dir: PathLike | None) -> dict[str, list[ClassEvaluation]]:
    """Per-case agreement with the reference; ``{}`` when the folder is absent or empty.

    Args:
        eval_dir: folder with ``case_metrics.csv`` (``None`` = none).

    Returns:
        case id -> one :class:`ClassEvaluation` per class, in file order.
    """
    if eval_dir is None:
        return {}
    folder = Path(eval_dir)
    if not folder.is_dir():
        logger.warning("evaluation folder %s not found; metrics not reported", folder)
        return {}
    out: dict[str, list[ClassEvaluation]] = {}
    for row in _rows(folder / CASE_METRICS):
        out.setdefault(row.case_id, []).append(class_evaluation(row))
    return out
