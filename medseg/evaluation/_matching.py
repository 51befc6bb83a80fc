"""One-to-one matching of two lesion maps (internal; the rules are in ``lesions``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from medseg.artifacts import LesionStatus
from medseg.evaluation.froc import DetectionCurve


@dataclass(frozen=True)
class LesionMatch:
    """One matched pair (TP), missed reference lesion (FN) or false predicted lesion (FP).

    Volumes are in mm³ (None for the absent side); ``iou`` and ``dice`` are the pair's voxel
    overlap (0 for FN and FP); ``score`` is the predicted lesion's confidence (None for FN).
    """

    status: LesionStatus
    ref_id: int | None
    pred_id: int | None
    ref_volume_mm3: float | None
    pred_volume_mm3: float | None
    iou: float
    dice: float
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value."""
        return asdict(self)


@dataclass(frozen=True)
class _Table:
    """Lesion ids and voxel counts of one lesion map (after the size filter)."""

    ids: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]


def _table(lesions: npt.NDArray[Any], *, voxel_mm3: float, min_volume_mm3: float) -> _Table:
    ids, counts = np.unique(lesions[lesions != 0], return_counts=True)
    keep = counts * voxel_mm3 >= min_volume_mm3
    return _Table(ids[keep].astype(np.int64), counts[keep].astype(np.int64))


def _positions(table: _Table, values: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Row of each value in ``table.ids``, -1 where absent."""
    if table.ids.size == 0:
        return np.full(values.shape, -1, dtype=np.intp)
    pos = np.searchsorted(table.ids, values).clip(0, table.ids.size - 1)
    return np.where(table.ids[pos] == values, pos, -1)


def _intersections(
    pred: npt.NDArray[Any], ref: npt.NDArray[Any], pred_t: _Table, ref_t: _Table
) -> npt.NDArray[np.int64]:
    both = (pred != 0) & (ref != 0)
    rows, cols = _positions(pred_t, pred[both]), _positions(ref_t, ref[both])
    valid = (rows >= 0) & (cols >= 0)
    n_pred, n_ref = pred_t.ids.size, ref_t.ids.size
    flat = np.bincount(rows[valid] * n_ref + cols[valid], minlength=n_pred * n_ref)
    return flat.reshape(n_pred, n_ref).astype(np.int64)


def assign(iou: npt.NDArray[np.float64], candidate: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """One-to-one matching: most candidate pairs, then largest total IoU; ``(row, col)`` pairs."""
    if not candidate.any():
        return []
    rows = np.flatnonzero(candidate.any(axis=1))
    cols = np.flatnonzero(candidate.any(axis=0))
    sub_c = candidate[np.ix_(rows, cols)]
    bonus = min(sub_c.shape) + 1.0  # any extra pair outweighs any IoU gain
    weight = np.where(sub_c, bonus + iou[np.ix_(rows, cols)], 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    return [(int(rows[i]), int(cols[j])) for i, j in zip(r, c) if sub_c[i, j]]


@dataclass(frozen=True)
class MatchResult:
    """Lesion matches of one class in one case, and its detection curve when scored."""

    matches: tuple[LesionMatch, ...]
    curve: DetectionCurve | None


def _records(
    pairs: list[tuple[int, int]],
    inter: npt.NDArray[np.int64],
    iou: npt.NDArray[np.float64],
    pred_t: _Table,
    ref_t: _Table,
    scores: npt.NDArray[np.float64] | None,
    voxel_mm3: float,
) -> list[LesionMatch]:
    def score(i: int) -> float | None:
        return None if scores is None else float(scores[i])

    out: list[LesionMatch] = []
    matched_pred = {i for i, _ in pairs}
    by_ref = {j: i for i, j in pairs}
    for j, ref_id in enumerate(ref_t.ids):
        ref_mm3 = float(ref_t.counts[j] * voxel_mm3)
        if j not in by_ref:
            out.append(LesionMatch("FN", int(ref_id), None, ref_mm3, None, 0.0, 0.0, None))
            continue
        i = by_ref[j]
        pair_dice = 2.0 * inter[i, j] / (pred_t.counts[i] + ref_t.counts[j])
        pred_mm3 = float(pred_t.counts[i] * voxel_mm3)
        out.append(
            LesionMatch(
                "TP",
                int(ref_id),
                int(pred_t.ids[i]),
                ref_mm3,
                pred_mm3,
                float(iou[i, j]),
                float(pair_dice),
                score(i),
            )
        )
    for i, pred_id in enumerate(pred_t.ids):
        if i not in matched_pred:
            pred_mm3 = float(pred_t.counts[i] * voxel_mm3)
            out.append(LesionMatch("FP", None, int(pred_id), None, pred_mm3, 0.0, 0.0, score(i)))
    return out


def _curve(
    iou: npt.NDArray[np.float64], candidate: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]
) -> DetectionCurve:
    thresholds = np.unique(scores)[::-1]
    tp = np.zeros(thresholds.size, dtype=np.int64)
    fp = np.zeros(thresholds.size, dtype=np.int64)
    for k, threshold in enumerate(thresholds):
        kept = scores >= threshold
        tp[k] = len(assign(iou[kept], candidate[kept]))
        fp[k] = int(kept.sum()) - tp[k]
    return DetectionCurve(thresholds.astype(np.float64), tp, fp, n_ref=int(iou.shape[1]))


def match_lesion_maps(
    pred: npt.NDArray[Any],
    ref: npt.NDArray[Any],
    *,
    voxel_mm3: float,
    min_iou: float = 0.1,
    min_volume_mm3: float = 0.0,
    scores: Mapping[int, float] | None = None,
) -> MatchResult:
    """:func:`match_lesions` on two lesion maps of one grid, with the detection curve (internal)."""
    if not 0.0 <= min_iou <= 1.0:
        raise ValueError(f"min_iou must be in [0, 1], got {min_iou}")
    pred_t = _table(pred, voxel_mm3=voxel_mm3, min_volume_mm3=min_volume_mm3)
    ref_t = _table(ref, voxel_mm3=voxel_mm3, min_volume_mm3=min_volume_mm3)
    inter = _intersections(pred, ref, pred_t, ref_t)
    union = pred_t.counts[:, None] + ref_t.counts[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    candidate = (inter > 0) & (iou >= min_iou)
    score_arr = None
    if scores is not None:
        score_arr = np.array([float(scores.get(int(i), 1.0)) for i in pred_t.ids], dtype=float)
    pairs = assign(iou, candidate)
    records = _records(pairs, inter, iou, pred_t, ref_t, score_arr, voxel_mm3)
    curve = None if score_arr is None else _curve(iou, candidate, score_arr)
    return MatchResult(tuple(records), curve)
