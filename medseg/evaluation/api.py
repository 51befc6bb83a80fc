"""Fast array-level metrics for the training loop's validation.

Interim module: the full evaluation stage (surface distances, lesion matching, FROC) lives in
:mod:`medseg.evaluation.metrics` / :mod:`medseg.evaluation.lesions`; this entry point keeps the
training loop's contract: ``case_metrics_arrays(pred, ref, spacing=, labels=, lesion_labels=)``
returns ``{"dice": {label: value}, "lesion_f1": {label: value}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    p, r = int(pred.sum()), int(ref.sum())
    if p == 0 and r == 0:
        return float("nan")  # nothing to find and nothing found: no information for the mean
    return 2.0 * int(np.logical_and(pred, ref).sum()) / (p + r)


def _lesion_f1(pred: np.ndarray, ref: np.ndarray) -> float:
    pred_cc, n_pred = ndimage.label(pred)
    ref_cc, n_ref = ndimage.label(ref)
    if n_pred == 0 and n_ref == 0:
        return float("nan")
    hit_ref = len(np.unique(ref_cc[pred & (ref_cc > 0)]))
    hit_pred = len(np.unique(pred_cc[ref & (pred_cc > 0)]))
    tp = min(hit_ref, hit_pred)
    fp, fn = n_pred - tp, n_ref - tp
    return 2.0 * tp / max(2 * tp + fp + fn, 1)


def case_metrics_arrays(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    labels: Mapping[int, str],
    lesion_labels: Sequence[int] = (),
) -> dict[str, dict[int, float]]:
    """Per-class Dice and (for lesion labels) lesion F1 with any-overlap matching."""
    out: dict[str, dict[int, float]] = {"dice": {}, "lesion_f1": {}}
    for value in labels:
        p, r = pred == value, ref == value
        out["dice"][value] = _dice(p, r)
        out["lesion_f1"][value] = _lesion_f1(p, r) if value in lesion_labels else float("nan")
    return out
