"""RoIAlign against a hand-written loop reference (Mask R-CNN ``aligned=True`` semantics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medseg.models.maskrcnn.roi_align import MultiScaleRoIAlign, assign_levels, roi_align


def _interpolate(feature: np.ndarray, coords: list[float]) -> np.ndarray:
    """Multilinear value of ``feature [C, *S]`` at index coordinates ``coords`` (one per axis)."""
    spatial = feature.shape[1:]
    lows, highs, fracs = [], [], []
    for c, n in zip(coords, spatial):
        if c < -1.0 or c > n:
            return np.zeros(feature.shape[0])
        c = max(c, 0.0)
        low = int(np.floor(c))
        if low >= n - 1:
            low = high = n - 1
            c = float(low)
        else:
            high = low + 1
        lows.append(low)
        highs.append(high)
        fracs.append(c - low)
    value = np.zeros(feature.shape[0])
    for corner in itertools.product((0, 1), repeat=len(coords)):
        weight = 1.0
        index = []
        for axis, use_high in enumerate(corner):
            weight *= fracs[axis] if use_high else 1.0 - fracs[axis]
            index.append(highs[axis] if use_high else lows[axis])
        value += weight * feature[(slice(None), *index)]
    return value


def reference_roi_align(features, boxes, batch_index, size, scale, ratio):
    """Explicit loops over RoIs, bins and sample points."""
    features = features.numpy().astype(np.float64)
    dims = features.ndim - 2
    out = np.zeros((len(boxes), features.shape[1], *(size,) * dims))
    for k, (box, b) in enumerate(zip(boxes.tolist(), batch_index.tolist())):
        start = [box[a] * scale - 0.5 for a in range(dims)]
        bin_size = [(box[a + dims] - box[a]) * scale / size for a in range(dims)]
        for bin_index in itertools.product(range(size), repeat=dims):
            total = np.zeros(features.shape[1])
            for sample in itertools.product(range(ratio), repeat=dims):
                coords = [
                    start[a] + bin_index[a] * bin_size[a] + (sample[a] + 0.5) * bin_size[a] / ratio
                    for a in range(dims)
                ]
                total += _interpolate(features[b], coords)
            out[(k, slice(None), *bin_index)] = total / ratio**dims
    return out


def _random_boxes(n: int, spatial: tuple[int, ...], stride: int, gen: torch.Generator):
    dims = len(spatial)
    extent = torch.tensor(spatial, dtype=torch.float64) * stride
    lo = torch.rand(n, dims, generator=gen, dtype=torch.float64) * extent * 1.2 - 0.2 * extent
    size = torch.rand(n, dims, generator=gen, dtype=torch.float64) * extent * 0.6
    return torch.cat([lo, lo + size], dim=1)


SPECIAL_2D = [
    [0.0, 0.0, 64.0, 48.0],  # the whole image
    [-10.0, -3.0, 12.0, 9.0],  # crossing the low border
    [50.0, 40.0, 75.0, 70.0],  # crossing the high border
    [30.2, 17.9, 30.5, 18.1],  # tiny (a fraction of a voxel)
    [80.0, 80.0, 90.0, 95.0],  # fully outside
    [-2.0, 0.0, -0.5, 3.0],  # outside, within the one-cell margin (border value)
]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(("size", "stride", "ratio"), [(3, 4, 2), (2, 8, 3), (4, 2, 1)])
def test_roi_align_matches_loop_reference(dims: int, size: int, stride: int, ratio: int) -> None:
    gen = torch.Generator().manual_seed(dims * 100 + size)
    image = (64, 48, 40)[:dims]
    spatial = tuple(n // stride for n in image)
    features = torch.randn(2, 3, *spatial, generator=gen, dtype=torch.float64)
    boxes = _random_boxes(6, spatial, stride, gen)
    special = torch.tensor(SPECIAL_2D, dtype=torch.float64)
    if dims == 3:
        special = torch.cat(
            [special[:, :2], special[:, :1] / 2, special[:, 2:], special[:, 2:3] / 2], 1
        )
    boxes = torch.cat([boxes, special])
    batch_index = torch.randint(0, 2, (len(boxes),), generator=gen)
    got = roi_align(
        features,
        boxes,
        batch_index,
        output_size=size,
        spatial_scale=1 / stride,
        sampling_ratio=ratio,
    )
    want = reference_roi_align(features, boxes, batch_index, size, 1 / stride, ratio)
    assert got.shape == (len(boxes), 3, *(size,) * dims)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)
    # the fully-outside box pools zeros, the others do not
    outside = len(boxes) - 2
    assert torch.all(got[outside] == 0)
    assert torch.any(got[outside + 1] != 0)


@pytest.mark.parametrize("dims", [2, 3])
def test_roi_align_float32_and_batch_index(dims: int) -> None:
    gen = torch.Generator().manual_seed(7)
    features = torch.randn(3, 2, *(8,) * dims, generator=gen)
    boxes = _random_boxes(5, (8,) * dims, 4, gen).float()
    batch_index = torch.tensor([2, 0, 1, 2, 0])
    got = roi_align(features, boxes, batch_index, output_size=2, spatial_scale=0.25)
    want = reference_roi_align(features, boxes, batch_index, 2, 0.25, 2)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)
    # each RoI really comes from its own image: moving it to another image changes the result
    other = roi_align(features, boxes, (batch_index + 1) % 3, output_size=2, spatial_scale=0.25)
    assert not torch.allclose(got, other)


def test_roi_align_empty_boxes() -> None:
    features = torch.randn(1, 4, 8, 8, 8)
    out = roi_align(
        features,
        torch.zeros(0, 6),
        torch.zeros(0, dtype=torch.long),
        output_size=3,
        spatial_scale=1.0,
    )
    assert out.shape == (0, 4, 3, 3, 3)


def test_assign_levels_2d_and_3d() -> None:
    strides = (4, 8, 16)
    boxes_2d = torch.tensor([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 10, 10], [0, 0, 2000, 500]])
    assert assign_levels(boxes_2d.float(), strides).tolist() == [2, 1, 0, 2]
    # 3D: the geometric mean of the sides (volume ** 1/3) decides
    boxes_3d = torch.tensor([[0, 0, 0, 448, 112, 224], [0, 0, 0, 56, 56, 56]]).float()
    assert assign_levels(boxes_3d, strides).tolist() == [2, 0]
    # non-consecutive strides: the coarsest level not finer than the wanted one
    assert assign_levels(boxes_2d.float(), (4, 16)).tolist() == [1, 0, 0, 1]


def test_multiscale_roi_align_uses_assigned_level() -> None:
    gen = torch.Generator().manual_seed(3)
    features = [torch.randn(2, 2, 16, 16, generator=gen), torch.randn(2, 2, 8, 8, generator=gen)]
    pooler = MultiScaleRoIAlign((4, 8), 3, canonical_size=32, canonical_level=3)
    boxes = [torch.tensor([[4.0, 4.0, 20.0, 20.0]]), torch.tensor([[0.0, 8.0, 64.0, 40.0]])]
    out = pooler(features, boxes)
    assert out.shape == (2, 2, 3, 3)
    small = roi_align(features[0], boxes[0], torch.tensor([0]), output_size=3, spatial_scale=1 / 4)
    large = roi_align(features[1], boxes[1], torch.tensor([1]), output_size=3, spatial_scale=1 / 8)
    torch.testing.assert_close(out, torch.cat([small, large]))
