"""FROC: lesion sensitivity against mean false positives per case, over score thresholds.

At a threshold t, only predicted lesions with score >= t are kept and matched again one-to-one
(the rules of :mod:`medseg.evaluation.lesions`); sensitivity = sum(TP) / sum(reference lesions)
and FP/case = sum(FP) / number of cases, every evaluated case counting (also those without
lesions). The sensitivity at a fixed FP rate f is the highest sensitivity of any threshold whose
FP/case is <= f (0 if none; the curve starts at (0, 0), no lesion kept). The FROC score is the mean
of the sensitivities at :data:`FP_RATES` (as the LUNA16 CPM, without interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

__all__ = ["FP_RATES", "DetectionCurve", "Froc", "compute_froc"]


@dataclass(frozen=True)
class DetectionCurve:
    """TP and FP counts of one case (one class) when keeping lesions with score >= threshold.

    Attributes:
        thresholds: the case's distinct predicted scores, descending.
        tp, fp: counts at each threshold (same length).
        n_ref: number of reference lesions of the case.
    """

    thresholds: npt.NDArray[np.float64]
    tp: npt.NDArray[np.int64]
    fp: npt.NDArray[np.int64]
    n_ref: int

    def at(self, thresholds: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """TP and FP counts at arbitrary ``thresholds`` (0 above the highest score)."""
        ascending = self.thresholds[::-1]
        n_kept = ascending.size - np.searchsorted(ascending, thresholds, side="left")
        tp = np.concatenate([[0], self.tp])[n_kept]
        fp = np.concatenate([[0], self.fp])[n_kept]
        return tp, fp


@dataclass(frozen=True)
class Froc:
    """A cohort's FROC curve and its summary.

    Attributes:
        thresholds: score thresholds, descending (the first point, +inf, keeps nothing).
        fp_per_case: mean number of false positives per case at each threshold.
        sensitivity: lesion sensitivity at each threshold.
        sensitivity_at_fp: FP rate -> highest sensitivity with FP/case <= rate.
        score: mean of ``sensitivity_at_fp``.
    """

    thresholds: npt.NDArray[np.float64]
    fp_per_case: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    sensitivity_at_fp: dict[float, float]
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``+inf`` threshold written as None)."""
        return {
            "thresholds": [None if np.isinf(t) else float(t) for t in self.thresholds],
            "fp_per_case": self.fp_per_case.tolist(),
            "sensitivity": self.sensitivity.tolist(),
            "sensitivity_at_fp": {str(k): v for k, v in self.sensitivity_at_fp.items()},
            "score": self.score,
        }


def compute_froc(
    curves: Sequence[DetectionCurve], *, fp_rates: Sequence[float] = FP_RATES
) -> Froc | None:
    """Pool per-case detection curves into a FROC curve.

    Args:
        curves: one curve per evaluated case (cases without lesions included).
        fp_rates: FP-per-case rates at which to read the sensitivity.

    Returns:
        The :class:`Froc`, or None when there are no cases or no reference lesions.

    Example:
        >>> a = DetectionCurve(np.array([0.9, 0.4]), np.array([1, 1]), np.array([0, 1]), n_ref=1)
        >>> b = DetectionCurve(np.array([0.8]), np.array([0]), np.array([1]), n_ref=1)
        >>> froc = compute_froc([a, b], fp_rates=(0.5, 1.0))
        >>> froc.sensitivity.tolist(), froc.fp_per_case.tolist(), froc.sensitivity_at_fp
        ([0.0, 0.5, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0], {0.5: 0.5, 1.0: 0.5})
    """
    n_ref = sum(c.n_ref for c in curves)
    if not curves or n_ref == 0:
        return None
    scores = np.unique(np.concatenate([c.thresholds for c in curves]))[::-1]
    thresholds = np.concatenate([[np.inf], scores])
    tp = np.zeros(thresholds.size, dtype=np.int64)
    fp = np.zeros(thresholds.size, dtype=np.int64)
    for curve in curves:
        case_tp, case_fp = curve.at(thresholds)
        tp += case_tp
        fp += case_fp
    sensitivity = tp / n_ref
    fp_per_case = fp / len(curves)
    at_fp = {
        float(rate): float(sensitivity[fp_per_case <= rate].max(initial=0.0)) for rate in fp_rates
    }
    return Froc(thresholds, fp_per_case, sensitivity, at_fp, float(np.mean(list(at_fp.values()))))
