"""evaluate_arrays / evaluate_case: per-class metrics, lesions, instances, geometry checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.evaluation import (
    EvaluationOptions,
    PredictedInstances,
    compute_class_metrics,
    evaluate_arrays,
    evaluate_case,
)
from medseg.io.volume import Volume

SPACING = (0.8, 0.8, 2.5)


def label_maps() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((30, 28, 12), np.uint8)
    ref[3:20, 3:20, 2:10] = 1
    ref[5:8, 5:8, 4:6] = 2  # lesion inside the organ
    ref[24:27, 22:26, 3:6] = 2  # lesion outside
    pred = ref.copy()
    pred[24:27, 22:26, 3:6] = 0  # missed
    pred[10:12, 10:12, 5:7] = 2  # false positive
    pred[3, 3:20, 2:10] = 0  # organ slightly smaller
    return pred, ref


def test_arrays_match_single_class_metrics_and_lesions() -> None:
    pred, ref = label_maps()
    m = evaluate_arrays(
        pred, ref, spacing=SPACING, labels={1: "organ", 2: "lesion"}, lesion_labels=[2]
    )
    for label in (1, 2):
        expected = compute_class_metrics(pred == label, ref == label, spacing=SPACING)
        assert m.classes[label] == expected
    assert list(m.lesions) == [2]
    s = m.lesions[2].scores
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert s.lesion_dice == pytest.approx(1 / 3)
    assert m.lesions[2].curve is None and not m.scored


def test_memory_layout_does_not_change_results() -> None:
    pred, ref = label_maps()
    kw = {"spacing": SPACING, "labels": [1, 2], "lesion_labels": [1, 2]}
    c_order = evaluate_arrays(pred, ref, **kw)
    f_order = evaluate_arrays(np.asfortranarray(pred), np.asfortranarray(ref), **kw)
    mixed = evaluate_arrays(np.asfortranarray(pred), ref, **kw)
    for other in (f_order, mixed):
        for label in (1, 2):
            for name, value in c_order.classes[label].to_dict().items():
                assert other.classes[label].to_dict()[name] == pytest.approx(value, nan_ok=True)
            assert other.lesions[label].matches == c_order.lesions[label].matches


def test_instances_give_scored_lesions() -> None:
    pred, ref = label_maps()
    instances = np.zeros(ref.shape, np.int32)
    instances[5:8, 5:8, 4:6] = 11
    instances[10:12, 10:12, 5:7] = 12
    instances[0:2, 0:2, 0:2] = 13  # class 1 instance: not a lesion of class 2
    inst = PredictedInstances(instances, {11: 2, 12: 2, 13: 1}, {11: 0.9, 12: 0.4, 13: 0.8})
    m = evaluate_arrays(
        pred, ref, spacing=SPACING, labels=[1, 2], lesion_labels=[2], instances=inst
    )
    assert m.scored
    rows = {(r.status, r.pred_id, r.score) for r in m.lesions[2].matches}
    assert rows == {("TP", 11, 0.9), ("FN", None, None), ("FP", 12, 0.4)}
    curve = m.lesions[2].curve
    assert curve is not None and curve.thresholds.tolist() == [0.9, 0.4]


def test_surface_off_and_options_validation() -> None:
    pred, ref = label_maps()
    m = evaluate_arrays(
        pred, ref, spacing=SPACING, labels=[1], options=EvaluationOptions(surface=False)
    )
    assert np.isnan(m.classes[1].hd95_mm) and m.classes[1].dice > 0.9
    with pytest.raises(ValueError, match="min_iou"):
        EvaluationOptions(min_iou=1.5)
    with pytest.raises(ValueError, match="lesion labels"):
        evaluate_arrays(pred, ref, spacing=SPACING, labels=[1], lesion_labels=[2])


def test_evaluate_case_geometry_errors_name_the_case() -> None:
    pred, ref = label_maps()
    affine = np.diag([*SPACING, 1.0])
    ref_vol = Volume(ref, affine)
    m = evaluate_case(Volume(pred, affine + 1e-5), ref_vol, labels=[1, 2], case_id="P0017")
    assert m.case_id == "P0017" and m.classes[1].dice > 0.9
    shifted = affine.copy()
    shifted[2, 3] += 2.5
    with pytest.raises(GeometryError, match=r"P0017.*affine"):
        evaluate_case(Volume(pred, shifted), ref_vol, labels=[1], case_id="P0017")
    with pytest.raises(GeometryError, match=r"P0017.*shape"):
        evaluate_case(Volume(pred[:-1], affine), ref_vol, labels=[1], case_id="P0017")


def test_evaluation_never_imports_torch() -> None:
    code = (
        "import numpy as np, sys, medseg.evaluation as ev, medseg.evaluation.folder, "
        "medseg.evaluation.outputs\n"
        "a = np.zeros((6, 6, 6), np.uint8); a[1:4, 1:4, 1:4] = 2\n"
        "ev.evaluate_arrays(a, a, spacing=(1, 1, 1), labels=[2], lesion_labels=[2])\n"
        "print('torch' in sys.modules, 'monai' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"
