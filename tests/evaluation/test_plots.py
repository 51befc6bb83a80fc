"""summary.png: fixed Dice axis, n counts finite values, a legend."""

from __future__ import annotations

import numpy as np

from medseg.evaluation import evaluate_arrays
from medseg.evaluation.plots import summary_figure


def _case(pred_fill: bool, case_id: str) -> object:
    ref = np.zeros((12, 12, 6), np.uint8)
    ref[2:6, 2:6, 1:4] = 1
    ref[7:10, 7:10, 2:4] = 2
    pred = ref.copy()
    pred[4:6, 2:6, 1:4] = 0  # Dice of class 1 well below 1
    if not pred_fill:
        pred[pred == 2] = 0  # class 2 missed: HD95 undefined (NaN)
    return evaluate_arrays(pred, ref, spacing=(1, 1, 2), labels={1: "organ", 2: "lesion"},
                           case_id=case_id)  # fmt: skip


def test_dice_axis_is_fixed_and_n_counts_finite_values() -> None:
    cases = [_case(True, "a"), _case(False, "b")]
    figure = summary_figure(cases, {1: "organ", 2: "lesion"})
    dice_ax, hd_ax = figure.axes[:2]
    assert dice_ax.get_ylim() == (-0.02, 1.02)  # not autoscaled to the values
    assert all(0.0 < c.classes[1].dice < 0.9 for c in cases)
    dice_ticks = [t.get_text() for t in dice_ax.get_xticklabels()]
    assert dice_ticks == ["organ\nn = 2", "lesion\nn = 2"]  # Dice 0 for a missed class is finite
    hd_ticks = [t.get_text() for t in hd_ax.get_xticklabels()]
    assert hd_ticks == ["organ\nn = 2", "lesion\nn = 1\n1 undefined"]  # NaN HD95 left out
    assert hd_ax.get_ylim()[0] == 0
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "25th-75th percentile (whiskers: range)", "median", "mean", "one case",
    ]  # fmt: skip
