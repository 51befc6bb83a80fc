"""Read an evaluation folder (``medseg evaluate``) into per-case metrics, tolerating its absence.

``case_metrics.csv`` has one row per case, or per case and class; every numeric column becomes a
metric (``dice``, or ``IRF.dice`` when the row names a class). ``lesions.csv`` has one row per
matched, missed or false lesion; its rows are counted per case and match status
(``lesions.tp`` ...). Anything missing or unreadable is logged and skipped.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from medseg.types import PathLike

logger = logging.getLogger(__name__)

CaseMetrics = dict[str, float | str]
_CLASS_COLUMNS = ("label_name", "class_name", "class", "label")
_STATUS_COLUMNS = ("status", "match", "outcome", "kind", "type")
_SKIP = {"case_id", "patient_id", "study_date", *_CLASS_COLUMNS}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        logger.info("evaluation file %s not found; skipped", path.name)
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row.get("case_id")]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        logger.warning("evaluation file %s is unreadable (%s); skipped", path.name, err)
        return []


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _case_metric_rows(rows: list[dict[str, str]], out: dict[str, CaseMetrics]) -> None:
    for row in rows:
        cls = next((row[c] for c in _CLASS_COLUMNS if row.get(c)), None)
        metrics = out.setdefault(row["case_id"], {})
        for column, text in row.items():
            value = _number(text)
            if column in _SKIP or column is None or value is None:
                continue
            metrics[f"{cls}.{column}" if cls else column] = value


def _lesion_rows(rows: list[dict[str, str]], out: dict[str, CaseMetrics]) -> None:
    for row in rows:
        status = next((row[c] for c in _STATUS_COLUMNS if row.get(c)), None)
        if status is None:
            continue
        metrics = out.setdefault(row["case_id"], {})
        key = f"lesions.{status}"
        metrics[key] = float(metrics.get(key, 0.0)) + 1.0


def load_evaluation(eval_dir: PathLike | None) -> dict[str, CaseMetrics]:
    """Per-case metrics from an evaluation folder; ``{}`` when it is absent or empty.

    Args:
        eval_dir: folder with ``case_metrics.csv`` and/or ``lesions.csv`` (``None`` = none).

    Returns:
        case id -> metric name -> value.
    """
    if eval_dir is None:
        return {}
    folder = Path(eval_dir)
    if not folder.is_dir():
        logger.warning("evaluation folder %s not found; metrics not reported", folder)
        return {}
    out: dict[str, CaseMetrics] = {}
    _case_metric_rows(_rows(folder / "case_metrics.csv"), out)
    _lesion_rows(_rows(folder / "lesions.csv"), out)
    return out
