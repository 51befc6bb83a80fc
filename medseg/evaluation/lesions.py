"""Lesion-level evaluation: connected components, one-to-one matching, detection scores.

A *lesion map* is an integer array where 0 is background and each lesion has its own id (the
output of :func:`label_lesions`, or a predicted instance map). Matching is one-to-one: a pair of
predicted and reference lesions is a *candidate* when they overlap with IoU >= ``min_iou``
(``min_iou=0``: any overlap). Among candidates, the assignment with the most pairs is chosen and,
among those, the one with the largest total IoU (``scipy.optimize.linear_sum_assignment``).
Matched pairs are TP, unmatched reference lesions FN, unmatched predicted lesions FP; a reference
lesion split in two predictions gives one TP and one FP.

Scores (one case or a cohort; TP/FP/FN summed):

* sensitivity = TP / (TP + FN) (NaN without reference lesions); precision = TP / (TP + FP) (NaN
  without predicted lesions); F1 = 2TP / (2TP + FP + FN).
* lesion Dice = mean over all lesions (TP pairs, FN and FP lesions) of the pair's voxel Dice,
  unmatched lesions counting 0.
* panoptic quality PQ = SQ × RQ, SQ = mean IoU of TP pairs (NaN without TP),
  RQ = TP / (TP + FP/2 + FN/2) (Kirillov et al. 2019).
* No lesion on either side: F1 = lesion Dice = RQ = PQ = 1 (agreement on absence, as voxel Dice),
  sensitivity, precision and SQ NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.evaluation._matching import LesionMatch, match_lesion_maps
from medseg.evaluation._surface import voxel_volume
from medseg.labelmaps import label_components

NAN = float("nan")

__all__ = [
    "LesionMatch",
    "LesionScores",
    "label_lesions",
    "lesion_scores",
    "match_lesions",
]


def label_lesions(
    mask: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    connectivity: int = 26,
    min_volume_mm3: float = 0.0,
) -> npt.NDArray[np.int32]:
    """Connected components of a mask, numbered 1..n in raster order.

    Args:
        mask: 2D or 3D mask (non-zero = lesion), indexed like ``spacing``.
        spacing: voxel size in mm along the array axes.
        connectivity: neighbours that connect voxels (see
            :func:`medseg.labelmaps.label_components`): 6, 18 or 26 (default) in 3D, 4 or 8 in 2D.
        min_volume_mm3: components smaller than this are removed; the rest are renumbered.

    Returns:
        int32 lesion map of the mask's shape, 0 = background.

    Example:
        >>> label_lesions(np.array([[1, 1, 0, 1], [0, 0, 0, 1]]), spacing=(1.0, 2.0),
        ...               min_volume_mm3=3.0).tolist()
        [[1, 1, 0, 2], [0, 0, 0, 2]]
    """
    labels, n = label_components(mask, connectivity=connectivity)
    if min_volume_mm3 > 0 and n:
        sizes = np.bincount(labels.reshape(-1), minlength=n + 1) * voxel_volume(spacing)
        keep = sizes >= min_volume_mm3
        keep[0] = False
        renumber = np.zeros(n + 1, dtype=np.int32)
        renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        labels = renumber[labels]
    return labels


@dataclass(frozen=True)
class LesionScores:
    """Lesion-level counts and scores of one case or a cohort (definitions in the module doc)."""

    n_ref: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    sensitivity: float
    precision: float
    f1: float
    lesion_dice: float
    sq: float
    rq: float
    pq: float

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value."""
        return asdict(self)


def lesion_scores(matches: Sequence[LesionMatch]) -> LesionScores:
    """Counts, sensitivity, precision, F1, lesion Dice and PQ of a list of lesion matches.

    Example:
        >>> m = [LesionMatch("TP", 1, 1, 8.0, 8.0, 1.0, 1.0, 1.0),
        ...      LesionMatch("FN", 2, None, 4.0, None, 0.0, 0.0, None)]
        >>> s = lesion_scores(m)
        >>> s.sensitivity, s.f1, s.lesion_dice
        (0.5, 0.6666666666666666, 0.5)
    """
    tp = sum(m.status == "TP" for m in matches)
    fp = sum(m.status == "FP" for m in matches)
    fn = sum(m.status == "FN" for m in matches)
    if tp + fp + fn == 0:
        return LesionScores(0, 0, 0, 0, 0, NAN, NAN, 1.0, 1.0, NAN, 1.0, 1.0)
    sq = float(np.mean([m.iou for m in matches if m.status == "TP"])) if tp else NAN
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    return LesionScores(
        n_ref=tp + fn,
        n_pred=tp + fp,
        tp=tp,
        fp=fp,
        fn=fn,
        sensitivity=tp / (tp + fn) if tp + fn else NAN,
        precision=tp / (tp + fp) if tp + fp else NAN,
        f1=2 * tp / (2 * tp + fp + fn),
        lesion_dice=float(np.mean([m.dice for m in matches])),
        sq=sq,
        rq=rq,
        pq=sq * rq if tp else 0.0,
    )


def match_lesions(
    pred_lesions: npt.ArrayLike,
    ref_lesions: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    min_iou: float = 0.1,
    min_volume_mm3: float = 0.0,
    scores: Mapping[int, float] | None = None,
) -> list[LesionMatch]:
    """Match predicted and reference lesions one-to-one (rules in the module docstring).

    Args:
        pred_lesions: predicted lesion map (0 = background, one id per lesion), 2D or 3D.
        ref_lesions: reference lesion map, same shape and grid.
        spacing: voxel size in mm along the array axes.
        min_iou: minimum IoU of a candidate pair; 0 = any overlap.
        min_volume_mm3: lesions smaller than this (either side) are ignored.
        scores: confidence per predicted lesion id (missing ids: 1.0); None = unscored.

    Returns:
        TP pairs and FN lesions in reference-id order, then FP lesions in predicted-id order.

    Example:
        >>> ref = np.array([[1, 1, 0, 0, 2]])
        >>> pred = np.array([[0, 5, 5, 0, 0]])
        >>> [(m.status, m.ref_id, m.pred_id) for m in match_lesions(pred, ref, spacing=(1, 1))]
        [('TP', 1, 5), ('FN', 2, None)]
    """
    pred_a, ref_a = np.asarray(pred_lesions), np.asarray(ref_lesions)
    if pred_a.shape != ref_a.shape:
        raise ValueError(f"pred shape {pred_a.shape} differs from ref shape {ref_a.shape}")
    result = match_lesion_maps(
        pred_a,
        ref_a,
        voxel_mm3=voxel_volume(spacing),
        min_iou=min_iou,
        min_volume_mm3=min_volume_mm3,
        scores=scores,
    )
    return list(result.matches)
