"""Lesion components, one-to-one matching, lesion scores and FROC on hand-built maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.evaluation._matching import match_lesion_maps
from medseg.evaluation.froc import DetectionCurve, compute_froc
from medseg.evaluation.lesions import (
    LesionMatch,
    label_lesions,
    lesion_scores,
    match_lesions,
)


def row(*ids: int) -> np.ndarray:
    """A 1 x N lesion map (2D) from a list of ids."""
    return np.array([ids])


def statuses(matches: list[LesionMatch]) -> list[tuple]:
    return [(m.status, m.ref_id, m.pred_id) for m in matches]


@pytest.mark.parametrize(("connectivity", "expected"), [(6, 3), (18, 2), (26, 1)])
def test_label_lesions_connectivity(connectivity: int, expected: int) -> None:
    mask = np.zeros((4, 4, 4), bool)
    mask[0, 0, 0] = mask[1, 1, 0] = True  # edge neighbours (18, 26)
    mask[2, 2, 1] = True  # corner neighbour of (1, 1, 0) (26 only)
    labels = label_lesions(mask, spacing=(1, 1, 1), connectivity=connectivity)
    assert labels.max() == expected


def test_label_lesions_min_volume_and_bad_connectivity() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[0:2, 0:2, 0:2] = True  # 8 voxels x 0.5 mm3 = 4 mm3
    mask[4, 4, 4] = True  # 0.5 mm3
    labels = label_lesions(mask, spacing=(0.5, 1.0, 1.0), min_volume_mm3=1.0)
    assert labels.max() == 1 and labels[4, 4, 4] == 0 and labels[0, 0, 0] == 1
    with pytest.raises(ValueError, match="connectivity"):
        label_lesions(mask, spacing=(1, 1, 1), connectivity=8)


def test_hand_built_tp_fp_fn_and_lesion_dice() -> None:
    ref = row(1, 1, 1, 1, 0, 2, 2, 0, 0, 0, 3, 3, 0, 0)
    pred = row(7, 7, 7, 0, 0, 0, 0, 0, 8, 0, 0, 9, 9, 0)
    matches = match_lesions(pred, ref, spacing=(1.0, 2.0))
    assert statuses(matches) == [("TP", 1, 7), ("FN", 2, None), ("TP", 3, 9), ("FP", None, 8)]
    tp1, fn, tp3, fp = matches
    assert tp1.iou == pytest.approx(3 / 4) and tp1.dice == pytest.approx(6 / 7)
    assert tp3.iou == pytest.approx(1 / 3) and tp3.dice == pytest.approx(0.5)
    assert tp1.ref_volume_mm3 == 8.0 and tp1.pred_volume_mm3 == 6.0
    assert fn.pred_volume_mm3 is None and fp.ref_volume_mm3 is None and fn.dice == 0.0
    s = lesion_scores(matches)
    assert (s.tp, s.fp, s.fn, s.n_ref, s.n_pred) == (2, 1, 1, 3, 3)
    assert s.sensitivity == pytest.approx(2 / 3) and s.precision == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.lesion_dice == pytest.approx((6 / 7 + 0.5) / 4)
    assert s.sq == pytest.approx((3 / 4 + 1 / 3) / 2)
    assert s.rq == pytest.approx(2 / 3)
    assert s.pq == pytest.approx(s.sq * s.rq)


def test_split_lesion_is_one_tp_and_one_fp() -> None:
    ref = row(1, 1, 1, 1, 1, 1, 1, 1)
    pred = row(4, 4, 4, 4, 5, 5, 5, 5)
    matches = match_lesions(pred, ref, spacing=(1, 1))
    assert [m.status for m in matches] == ["TP", "FP"]
    assert lesion_scores(matches).lesion_dice == pytest.approx((8 / 12) / 2)


def test_merged_prediction_is_one_tp_and_one_fn() -> None:
    ref = row(1, 1, 1, 0, 2, 2)
    pred = row(3, 3, 3, 3, 3, 3)
    assert [m.status for m in match_lesions(pred, ref, spacing=(1, 1))] == ["TP", "FN"]


@pytest.mark.parametrize(
    ("min_iou", "expected"),
    [(0.0, {(1, 3), (2, 4)}), (0.1, {(1, 3), (2, 4)}), (0.5, {(1, 3)}), (0.51, set())],
)
def test_iou_threshold_and_any_overlap(min_iou: float, expected: set) -> None:
    ref = row(1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
    pred = row(3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4)  # IoU 0.5 and 0.1
    matches = match_lesions(pred, ref, spacing=(1, 1), min_iou=min_iou)
    assert {(m.ref_id, m.pred_id) for m in matches if m.status == "TP"} == expected


def test_assignment_maximises_matches_before_iou() -> None:
    # pred 7 overlaps ref 1 (IoU 9/11) and ref 2 (IoU 1/11); pred 8 only ref 1 (IoU 1/10).
    ref = row(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2)
    pred = row(8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0)
    matches = match_lesions(pred, ref, spacing=(1, 1), min_iou=0.05)
    assert sorted(statuses(matches)) == [("TP", 1, 8), ("TP", 2, 7)]


def test_min_volume_ignores_small_lesions_on_both_sides() -> None:
    ref = row(1, 1, 1, 0, 2, 0, 0)
    pred = row(5, 5, 5, 0, 0, 0, 6)
    matches = match_lesions(pred, ref, spacing=(1, 1), min_volume_mm3=2.0)
    assert statuses(matches) == [("TP", 1, 5)]


def test_no_lesions_on_either_side() -> None:
    empty = np.zeros((3, 3, 3), np.int32)
    s = lesion_scores(match_lesions(empty, empty, spacing=(1, 1, 1)))
    assert (s.tp, s.fp, s.fn) == (0, 0, 0)
    assert (s.f1, s.lesion_dice, s.rq, s.pq) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(s.sensitivity) and math.isnan(s.precision) and math.isnan(s.sq)


def test_only_false_positives() -> None:
    pred = row(0, 3, 3, 0)
    s = lesion_scores(match_lesions(pred, np.zeros_like(pred), spacing=(1, 1)))
    assert (s.fp, s.f1, s.pq, s.lesion_dice) == (1, 0.0, 0.0, 0.0)
    assert math.isnan(s.sensitivity) and s.precision == 0.0


def test_detection_curve_rematches_at_each_threshold() -> None:
    """At a high threshold a lower-IoU prediction can match the lesion a better one took."""
    ref = row(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
    pred = row(3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 0)  # 3: IoU 0.3, score 0.9; 4: IoU 7/11, 0.5
    result = match_lesion_maps(pred, ref, voxel_mm3=1.0, scores={3: 0.9, 4: 0.5})
    assert statuses(list(result.matches)) == [("TP", 1, 4), ("FP", None, 3)]
    curve = result.curve
    assert curve is not None
    assert curve.thresholds.tolist() == [0.9, 0.5]
    assert curve.tp.tolist() == [1, 1] and curve.fp.tolist() == [0, 1]


def test_froc_over_cases() -> None:
    ref_a = row(1, 1, 0, 2, 2, 0, 0, 0)
    pred_a = row(5, 5, 0, 0, 0, 0, 6, 6)  # TP (0.8), FP (0.6)
    ref_b = row(1, 1, 0, 0)
    pred_b = row(0, 0, 0, 7)  # FP (0.7)
    a = match_lesion_maps(pred_a, ref_a, voxel_mm3=1.0, scores={5: 0.8, 6: 0.6}).curve
    b = match_lesion_maps(pred_b, ref_b, voxel_mm3=1.0, scores={7: 0.7}).curve
    empty = DetectionCurve(np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64), n_ref=0)
    assert a is not None and b is not None
    froc = compute_froc([a, b, empty], fp_rates=(0.25, 0.5, 1.0))
    assert froc is not None
    assert froc.thresholds[1:].tolist() == [0.8, 0.7, 0.6]
    assert froc.sensitivity.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])
    assert froc.fp_per_case.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3])
    assert froc.sensitivity_at_fp == pytest.approx({0.25: 1 / 3, 0.5: 1 / 3, 1.0: 1 / 3})
    assert froc.score == pytest.approx(1 / 3)
    assert compute_froc([empty]) is None
