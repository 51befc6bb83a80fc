"""Label maps sampled on source frames: slices of the grid are copied, others take the nearest
voxel, frames beyond the label map are refused."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import DataError
from medseg.io.geometry import dicom_affine_lps, lps_to_ras_affine
from medseg.io.seg_geometry import FramePlane, masks_by_index, masks_on_frames
from medseg.io.volume import Volume

IOP = np.array([1.0, 0, 0, 0, 1, 0])


def _labels() -> Volume:
    """6 x 4 x 5 labels, value = slice index + 1; 0.5 mm pixels, 2 mm slices, origin (10, 20, 30)."""
    array = np.broadcast_to(np.arange(1, 6, dtype=np.uint8), (6, 4, 5)).copy()
    lps = dicom_affine_lps(IOP, [10, 20, 30], [0.5, 0.5], [0, 0, 2.0])
    return Volume(array, lps_to_ras_affine(lps), {})


def _plane(z: float, dx: float = 0.0) -> FramePlane:
    return FramePlane(np.array([10.0 + dx, 20.0, z]), IOP, np.array([0.5, 0.5]))


def test_frames_on_grid_slices_nearest_and_outside() -> None:
    labels = _labels()
    masks = masks_on_frames(labels, [_plane(30), _plane(34), _plane(36.9), _plane(37.3)], 4, 6)
    assert masks.labels.shape == (4, 4, 6)
    assert [int(m[0, 0]) for m in masks.labels] == [1, 3, 4, 5]  # 36.9 -> slice 3, 37.3 -> 4
    np.testing.assert_allclose(masks.offsets_mm, [0, 0, 0.9, 0.7], atol=1e-9)
    assert masks.resampled
    # a frame shifted by 0.75 pixel along the rows: every column moves by one voxel
    shifted = masks_on_frames(labels, [_plane(30, dx=0.375)], 4, 6)
    assert not shifted.resampled  # same slice, only moved in-plane
    labels.array[:, :, 0] = np.arange(6)[:, None]
    shifted = masks_on_frames(labels, [_plane(30, dx=0.375)], 4, 6)
    np.testing.assert_array_equal(shifted.labels[0, 0], [1, 2, 3, 4, 5, 0])  # last column outside
    with pytest.raises(DataError, match="outside its 5 slices"):
        masks_on_frames(labels, [_plane(30 - 1.2)], 4, 6)


def test_frames_by_index_follow_the_frame_order() -> None:
    labels = _labels()
    masks = masks_by_index(labels, [2, 0, 1, 4, 3], 5)
    assert [int(m[0, 0]) for m in masks.labels] == [2, 3, 1, 5, 4]
    with pytest.raises(DataError, match="5 slices, the source series 6"):
        masks_by_index(labels, None, 6)
