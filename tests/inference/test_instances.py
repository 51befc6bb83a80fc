"""Mask R-CNN tiling: lesions cut by window borders are found once; 2D detections link into 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.config.schema import InstanceConfig
from medseg.inference.instances import InstanceSettings, predict_instances
from tests.inference.conftest import OracleDetector


def _settings(
    window: tuple[int, int, int], *, dims: int = 3, overlap: float = 0.5, **instances: float
) -> InstanceSettings:
    return InstanceSettings(
        window=window,
        spatial_dims=dims,
        slice_axis=2,
        overlap=overlap,
        sw_batch_size=2,
        class_labels={1: 1, 2: 2},
        instances=InstanceConfig(**instances),
    )


def _image(shape: tuple[int, int, int], boxes: list[tuple[tuple[int, ...], float]]) -> torch.Tensor:
    image = torch.zeros((1, *shape))
    for box, value in boxes:
        image[(0, *(slice(box[a], box[a + 3]) for a in range(3)))] = value
    return image


def _mask(shape: tuple[int, int, int], box: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(box[a], box[a + 3]) for a in range(3))] = True
    return mask


ORACLE = OracleDetector({100.0: 1, 200.0: 2})


@pytest.mark.parametrize(
    "lesion",
    [
        (24, 8, 8, 40, 20, 20),  # crosses the border at x = 32; whole in the middle window
        (4, 8, 8, 60, 20, 20),  # longer than a window: only pieces, merged
        (58, 2, 20, 64, 9, 32),  # in a corner: cut by the image border only
    ],
)
def test_lesion_across_window_borders_is_found_once(lesion: tuple[int, ...]) -> None:
    shape = (64, 32, 32)
    found = predict_instances([ORACLE], _image(shape, [(lesion, 100.0)]), _settings((32, 32, 32)))
    assert found.labels == [1] and len(found.scores) == 1
    np.testing.assert_array_equal(found.instance_map == 1, _mask(shape, lesion))


def test_neighbouring_lesions_stay_apart_and_low_scores_are_dropped() -> None:
    shape = (64, 40, 16)  # smaller than the window along z: padded
    near = [((10, 10, 2, 30, 20, 8), 100.0), ((30, 10, 2, 40, 20, 8), 200.0)]  # touching, 2 classes
    far = ((50, 30, 10, 52, 32, 12), 100.0)  # 8 voxels: scores 0.53
    image = _image(shape, [*near, far])
    found = predict_instances([ORACLE], image, _settings((32, 32, 32), score_threshold=0.6))
    assert sorted(found.labels) == [1, 2] and all(s >= 0.6 for s in found.scores)
    for (box, _), label in zip(near, (1, 2)):
        instance = found.labels.index(label) + 1
        np.testing.assert_array_equal(found.instance_map == instance, _mask(shape, box))
    assert found.scores == sorted(found.scores, reverse=True)


def test_2d_detections_link_into_3d_lesions() -> None:
    shape = (32, 32, 10)
    lesions = [
        ((4, 4, 2, 14, 12, 6), 100.0),  # slices 2-5: one lesion
        ((6, 6, 7, 12, 10, 9), 100.0),  # same place, after an empty slice: another lesion
        ((16, 4, 2, 26, 12, 4), 100.0),  # beside the first: no overlap, another lesion
        ((4, 4, 6, 14, 12, 7), 200.0),  # right after the first, other class: another lesion
    ]
    found = predict_instances(
        [ORACLE], _image(shape, lesions), _settings((32, 32, 1), dims=2, overlap=0.0)
    )
    assert len(found.labels) == 4 and sorted(found.labels) == [1, 1, 1, 2]
    for box, _ in lesions:
        ids = np.unique(found.instance_map[_mask(shape, box)])
        assert len(ids) == 1 and ids[0] > 0
        np.testing.assert_array_equal(found.instance_map == ids[0], _mask(shape, box))
    first = found.instance_map[4:14, 4:12, 2:6]
    assert first.min() == first.max() > 0  # four slices, one id
