"""Cohort summary of an evaluation: per class and metric statistics, lesion totals, FROC.

``summary.json`` (``schema_version`` 1)::

    {"schema_version": 1, "medseg_version": "...", "metric_definitions": {...},
     "settings": {...}, "pred_dir": "...", "ref": "...",
     "labels": {"1": "organ", "2": "lesion"}, "lesion_labels": [2],
     "cases": {"total": 3, "evaluated": 2, "skipped": 1, "failed": 0},
     "classes": {"2": {"name": "lesion",
                       "metrics": {"dice": {"mean", "sd", "median", "q1", "q3", "n", "n_nan"}, ...},
                       "lesions": {"n_ref", "n_pred", "tp", "fp", "fn", "sensitivity", ...,
                                   "froc": {...} | null, "froc_note": "..."}}},
     "skipped": [{"case_id": "...", "status": "skipped" | "failed", "reason": "..."}]}

Statistics ignore NaN: ``n`` counts the values used and ``n_nan`` the NaN ones (e.g. HD95 of
cases where one mask is empty). ``sd`` is the sample standard deviation (null for n < 2); q1 and
q3 are the 25th and 75th percentiles (linear). Lesion totals pool TP/FP/FN over the cohort.
JSON has no NaN: undefined values are written as null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from medseg._version import __version__
from medseg.evaluation.evaluate import CaseMetrics, EvaluationOptions
from medseg.evaluation.froc import compute_froc
from medseg.evaluation.lesions import lesion_scores

SUMMARY_SCHEMA_VERSION = 1
METRIC_DEFINITIONS_VERSION = 1

CLASS_METRICS = (
    "dice",
    "iou",
    "precision",
    "recall",
    "volume_pred_mm3",
    "volume_ref_mm3",
    "volume_diff_mm3",
    "hd_mm",
    "hd95_mm",
    "assd_mm",
    "nsd",
)
LESION_METRICS = ("sensitivity", "precision", "f1", "lesion_dice", "pq")

DEFINITIONS = {
    "version": METRIC_DEFINITIONS_VERSION,
    "surface": "mask voxels with a face neighbour (6-connectivity) outside the mask",
    "distance": "Euclidean distance in mm between voxel centres, nearest surface voxel",
    "hd95": "max of the two directed 95th percentiles (linear interpolation), as MONAI",
    "assd": "mean of the pooled distances of both directions",
    "nsd": "fraction of surface voxels of both masks within the tolerance (voxel counts)",
    "empty_masks": "both empty: Dice 1, distances 0, NSD 1; one empty: Dice 0, distances and "
    "NSD NaN (null), flagged empty_pred / empty_ref",
    "lesions": "one-to-one matching, most pairs then largest total IoU, among pairs with "
    "IoU >= min_iou (0: any overlap); unmatched lesions count 0 in lesion Dice; "
    "connectivity: neighbours joining a lesion's voxels (26 = faces, edges and corners)",
    "froc": "lesions with score >= t kept and matched again; sensitivity at a FP/case rate = "
    "highest sensitivity with mean FP per case <= rate; score = mean over the rates",
}


def clean(value: Any) -> Any:
    """Recursively replace NaN/inf floats by None and numpy scalars by Python ones (for JSON)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, sd, median, q1, q3 of the non-NaN values, with ``n`` used and ``n_nan`` ignored.

    Example:
        >>> describe([1.0, 2.0, float("nan"), 3.0])["n_nan"]
        1
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[~np.isnan(array)]
    stats: dict[str, float | int | None] = {
        "n": int(finite.size),
        "n_nan": int(array.size - finite.size),
    }
    if finite.size == 0:
        return {"mean": None, "sd": None, "median": None, "q1": None, "q3": None, **stats}
    q1, median, q3 = np.percentile(finite, [25.0, 50.0, 75.0])
    return {
        "mean": float(finite.mean()),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        **stats,
    }


def case_values(cases: Sequence[CaseMetrics], label: int) -> dict[str, list[float]]:
    """Per-case values of every metric of one class (lesion metrics prefixed ``lesion_``)."""
    values: dict[str, list[float]] = {name: [] for name in CLASS_METRICS}
    for case in cases:
        row = case.classes[label].to_dict()
        for name in CLASS_METRICS:
            values[name].append(float(row[name]))
        if label in case.lesions:
            scores = case.lesions[label].scores.to_dict()
            for name in LESION_METRICS:
                key = name if name.startswith("lesion_") else f"lesion_{name}"
                values.setdefault(key, []).append(float(scores[name]))
    return values


def lesion_totals(cases: Sequence[CaseMetrics], label: int) -> dict[str, Any]:
    """Pooled lesion scores of one class, with FROC when every case has scored lesions."""
    matches = [m for case in cases for m in case.lesions[label].matches]
    totals: dict[str, Any] = lesion_scores(matches).to_dict()
    curves = [case.lesions[label].curve for case in cases]
    if all(c is not None for c in curves) and cases:
        froc = compute_froc([c for c in curves if c is not None])
        totals["froc"] = None if froc is None else froc.to_dict()
        totals["froc_note"] = "" if froc is not None else "no reference lesions"
    else:
        totals["froc"] = None
        totals["froc_note"] = "predicted lesions carry no scores (no instance files) in some cases"
    return totals


def build_summary(
    cases: Sequence[CaseMetrics],
    problems: Sequence[dict[str, str]],
    *,
    labels: dict[int, str],
    lesion_labels: Sequence[int],
    options: EvaluationOptions,
    pred_dir: Path,
    ref: Path,
    n_total: int,
) -> dict[str, Any]:
    """The ``summary.json`` document (see the module docstring); cases must be complete."""
    classes: dict[str, Any] = {}
    for label, name in labels.items():
        values = case_values(cases, label)
        entry: dict[str, Any] = {
            "name": name,
            "metrics": {metric: describe(v) for metric, v in values.items()},
        }
        if label in lesion_labels:
            entry["lesions"] = lesion_totals(cases, label)
        classes[str(label)] = entry
    failed = sum(p["status"] == "failed" for p in problems)
    return clean(
        {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "medseg_version": __version__,
            "metric_definitions": DEFINITIONS,
            "settings": asdict(options),
            "pred_dir": str(pred_dir),
            "ref": str(ref),
            "labels": {str(k): v for k, v in labels.items()},
            "lesion_labels": list(lesion_labels),
            "cases": {
                "total": n_total,
                "evaluated": len(cases),
                "skipped": len(problems) - failed,
                "failed": failed,
            },
            "classes": classes,
            "skipped": list(problems),
        }
    )
