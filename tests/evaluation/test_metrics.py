"""Voxel and surface metrics: analytic values, empty-mask rules, layouts, both distance methods."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import medseg.evaluation.evaluate
import medseg.evaluation.froc
import medseg.evaluation.lesions
import medseg.evaluation.metrics
import medseg.evaluation.summary
from medseg.evaluation._surface import SparseMask, foreground_indices, surface_indices
from medseg.evaluation.metrics import (
    assd,
    compute_class_metrics,
    dice,
    hausdorff_distance,
    hd95,
    iou,
    nsd,
    surface_distances,
)


def ball(shape: tuple[int, ...], center: tuple[int, ...], radius_mm: float, spacing) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    offsets = [(g - c) * s for g, c, s in zip(grid, center, spacing)]
    return sum(o**2 for o in offsets) <= radius_mm**2


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_shifted_sphere_hausdorff_is_k_times_spacing(axis: int, k: int) -> None:
    spacing = (0.7, 1.3, 2.5)
    radius_mm = 3 * spacing[axis]  # a whole number of voxels along the shift axis
    ref = ball((30, 24, 20), (14, 12, 9), radius_mm, spacing)
    pred = np.roll(ref, k, axis=axis)
    assert hausdorff_distance(pred, ref, spacing=spacing) == pytest.approx(k * spacing[axis])
    assert hausdorff_distance(ref, pred, spacing=spacing) == pytest.approx(k * spacing[axis])


def test_known_overlap_dice_iou_volumes_anisotropic() -> None:
    ref = np.zeros((10, 10, 10), bool)
    ref[2:6, 2:6, 2:6] = True  # 64 voxels
    pred = np.roll(ref, 1, axis=0)  # 48 shared
    assert dice(pred, ref) == pytest.approx(96 / 128)
    assert iou(pred, ref) == pytest.approx(48 / 80)
    m = compute_class_metrics(pred, ref, spacing=(0.5, 1.0, 3.0))
    assert m.volume_ref_mm3 == pytest.approx(64 * 1.5)
    assert m.volume_diff_mm3 == 0.0
    assert m.precision == pytest.approx(0.75) and m.recall == pytest.approx(0.75)
    assert m.hd_mm == pytest.approx(0.5)


def test_directed_percentiles_not_pooled() -> None:
    """HD95 = max of the directed 95th percentiles (MONAI), not the pooled percentile."""
    pred = np.zeros((9, 9, 12), bool)
    pred[4, 4, 2] = True
    ref = pred.copy()
    ref[4, 4, 6] = True  # a second, separate reference voxel 4 slices away
    s = 2.0
    d = surface_distances(pred, ref, spacing=(1.0, 1.0, s))
    assert d.pred_to_ref_mm.tolist() == [0.0]
    assert sorted(d.ref_to_pred_mm.tolist()) == [0.0, 4 * s]
    assert d.hausdorff_mm() == pytest.approx(4 * s)
    assert d.hausdorff_mm(95) == pytest.approx(0.95 * 4 * s)  # pooled would give 0.9 * 4 s
    assert d.assd_mm == pytest.approx(4 * s / 3)
    assert d.nsd(4 * s - 0.1) == pytest.approx(2 / 3)
    assert d.nsd(4 * s) == 1.0  # a distance equal to the tolerance counts as within


def test_single_voxels_distance_and_nsd_threshold() -> None:
    pred, ref = np.zeros((3, 3, 8), bool), np.zeros((3, 3, 8), bool)
    pred[1, 1, 1], ref[1, 1, 4] = True, True
    spacing = (1.0, 1.0, 0.8)  # 3 * 0.8 is not exact in binary: the slack must absorb it
    assert assd(pred, ref, spacing=spacing) == pytest.approx(2.4)
    assert hd95(pred, ref, spacing=spacing) == pytest.approx(2.4)
    assert nsd(pred, ref, spacing=spacing, tolerance_mm=2.4) == 1.0
    assert nsd(pred, ref, spacing=spacing, tolerance_mm=2.39) == 0.0


def test_both_empty() -> None:
    empty = np.zeros((4, 5, 6), bool)
    m = compute_class_metrics(empty, empty, spacing=(1.0, 1.0, 1.0))
    assert (m.dice, m.iou, m.precision, m.recall) == (1.0, 1.0, 1.0, 1.0)
    assert (m.hd_mm, m.hd95_mm, m.assd_mm, m.nsd) == (0.0, 0.0, 0.0, 1.0)
    assert (m.empty_pred, m.empty_ref) == (True, True)
    assert m.volume_pred_mm3 == 0.0


@pytest.mark.parametrize("empty_side", ["pred", "ref"])
def test_one_empty(empty_side: str) -> None:
    full = np.zeros((4, 5, 6), bool)
    full[1:3, 1:3, 1:3] = True
    empty = np.zeros_like(full)
    pred, ref = (empty, full) if empty_side == "pred" else (full, empty)
    m = compute_class_metrics(pred, ref, spacing=(1.0, 2.0, 3.0))
    assert m.dice == 0.0 and m.iou == 0.0
    for value in (m.hd_mm, m.hd95_mm, m.assd_mm, m.nsd):
        assert math.isnan(value)
    assert m.empty_pred == (empty_side == "pred") and m.empty_ref == (empty_side == "ref")
    if empty_side == "pred":
        assert m.recall == 0.0 and math.isnan(m.precision)
        assert m.volume_diff_mm3 == pytest.approx(-8 * 6.0)
    else:
        assert m.precision == 0.0 and math.isnan(m.recall)


@pytest.mark.parametrize("method", ["gather", "erosion"])
@pytest.mark.parametrize("seed", [3, 4])
def test_surface_is_face_connected_border_including(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ndimage.binary_opening(rng.random((9, 11, 7)) > 0.35).astype(np.uint8) * 2
    labels[0, 0, 0], labels[1:3, 4, 4] = 1, 1  # another class, not part of the mask
    flat = labels.reshape(-1)
    sparse = SparseMask(flat, 2, np.flatnonzero(flat == 2), labels.shape)
    mask = labels == 2
    expected = np.flatnonzero(mask & ~ndimage.binary_erosion(mask))  # scipy border_value=0
    assert np.array_equal(surface_indices(sparse, method=method), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, bool])
def test_foreground_indices_matches_flatnonzero(dtype: type) -> None:
    rng = np.random.default_rng(0)
    flat = (rng.random(3 * 4096 + 77) > 0.999).astype(dtype)
    flat[-1] = 1  # in the tail after the last full chunk
    assert np.array_equal(foreground_indices(flat), np.flatnonzero(flat))


def test_layout_and_axis_order_do_not_change_values() -> None:
    rng = np.random.default_rng(1)
    pred = ndimage.gaussian_filter(rng.standard_normal((20, 16, 12)), 2) > 0
    ref = ndimage.gaussian_filter(rng.standard_normal((20, 16, 12)), 2) > 0
    spacing = (0.6, 0.9, 2.0)
    base = compute_class_metrics(pred, ref, spacing=spacing)
    fortran = compute_class_metrics(
        np.asfortranarray(pred), np.asfortranarray(ref), spacing=spacing
    )
    transposed = compute_class_metrics(pred.T, ref.T, spacing=spacing[::-1])
    assert fortran == base
    for name, value in base.to_dict().items():
        assert transposed.to_dict()[name] == pytest.approx(value), name


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(2, 9), st.integers(2, 9), st.integers(2, 9)),
    spacing=st.tuples(*[st.floats(0.3, 3.0)] * 3),
)
def test_edt_and_kdtree_agree_and_symmetry(seed: int, shape: tuple, spacing: tuple) -> None:
    rng = np.random.default_rng(seed)
    pred, ref = rng.random(shape) > 0.6, rng.random(shape) > 0.6
    pred.flat[0] = ref.flat[-1] = True
    edt = surface_distances(pred, ref, spacing=spacing, method="edt")
    kdt = surface_distances(pred, ref, spacing=spacing, method="kdtree")
    np.testing.assert_allclose(edt.pred_to_ref_mm, kdt.pred_to_ref_mm, rtol=1e-12)
    np.testing.assert_allclose(edt.ref_to_pred_mm, kdt.ref_to_pred_mm, rtol=1e-12)
    swapped = surface_distances(ref, pred, spacing=spacing)
    assert swapped.hausdorff_mm(95) == pytest.approx(edt.hausdorff_mm(95))
    assert swapped.assd_mm == pytest.approx(edt.assd_mm)


def test_two_dimensional_masks() -> None:
    ref = np.zeros((12, 12), bool)
    ref[3:8, 3:8] = True
    pred = np.roll(ref, 2, axis=1)
    assert hausdorff_distance(pred, ref, spacing=(0.5, 0.25)) == pytest.approx(0.5)
    assert dice(pred, ref) == pytest.approx(0.6)


def test_bad_arguments_raise_value_error() -> None:
    a = np.zeros((3, 3, 3), bool)
    with pytest.raises(ValueError, match="shape"):
        dice(a, np.zeros((3, 3, 4), bool))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="percentile"):
        surface_distances(a, a, spacing=(1, 1, 1)).hausdorff_mm(101)


@pytest.mark.parametrize(
    "module",
    [
        medseg.evaluation.metrics,
        medseg.evaluation.lesions,
        medseg.evaluation.froc,
        medseg.evaluation.evaluate,
        medseg.evaluation.summary,
    ],
)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0
