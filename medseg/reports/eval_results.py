"""Read an evaluation folder (``medseg evaluate``) into per-case metrics, tolerating its absence.

``case_metrics.csv`` (:class:`~medseg.artifacts.CaseMetricsRow`) has one row per case and class;
every metric present becomes ``<class>.<column>`` (e.g. ``IRF.dice``). ``lesions.csv``
(:class:`~medseg.artifacts.LesionRow`) has one row per matched, missed or false lesion; its rows
are counted per case and match status (``lesions.TP`` ...). A missing file is logged and skipped;
a file that does not follow its schema is logged and ignored as a whole.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from medseg.artifacts import CaseMetricsRow, LesionRow
from medseg.types import PathLike

logger = logging.getLogger(__name__)

MetricValues = dict[str, float | str]
"""Metric name -> value of one case, as the report shows it."""
Row = TypeVar("Row", CaseMetricsRow, LesionRow)


def _rows(path: Path, schema: type[Row]) -> list[Row]:
    if not path.is_file():
        logger.info("evaluation file %s not found; skipped", path.name)
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(schema.columns()) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"columns {sorted(missing)} missing")
            return [schema.model_validate(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, ValidationError) as err:
        logger.warning("evaluation file %s is not usable (%s); ignored", path.name, err)
        return []


def load_evaluation(eval_dir: PathLike | None) -> dict[str, MetricValues]:
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
    out: dict[str, MetricValues] = {}
    for row in _rows(folder / "case_metrics.csv", CaseMetricsRow):
        metrics = out.setdefault(row.case_id, {})
        metrics.update({f"{row.class_name}.{k}": v for k, v in row.metrics().items()})
    for lesion in _rows(folder / "lesions.csv", LesionRow):
        metrics = out.setdefault(lesion.case_id, {})
        key = f"lesions.{lesion.status}"
        metrics[key] = float(metrics.get(key, 0.0)) + 1.0
    return out
