"""Label maps to targets and detections back to label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.models.maskrcnn import (
    instances_to_semantic,
    paste_masks,
    roi_align,
    targets_from_instance_map,
    targets_from_label_map,
)


def _hand_built_2d() -> np.ndarray:
    label = np.zeros((10, 8), dtype=np.uint8)
    label[1:4, 1:3] = 1  # class 1, 6 voxels
    label[4, 3] = 1  # touches the block diagonally only
    label[6:9, 5:8] = 2  # class 2, 9 voxels
    label[8, 1] = 2  # class 2, a single voxel
    return label


def test_targets_from_label_map_exact_2d() -> None:
    label = _hand_built_2d()
    targets = targets_from_label_map(label, classes=[1, 2], min_voxels=1, connectivity=4)
    assert targets["labels"].tolist() == [1, 1, 2, 2]
    assert targets["boxes"].tolist() == [
        [1, 1, 4, 3],
        [4, 3, 5, 4],
        [6, 5, 9, 8],
        [8, 1, 9, 2],
    ]
    masks = targets["masks"]
    assert masks.dtype == torch.uint8 and masks.shape == (4, 10, 8)
    expected = np.zeros((10, 8), dtype=np.uint8)
    expected[1:4, 1:3] = 1
    np.testing.assert_array_equal(masks[0].numpy(), expected)
    assert int(masks[1].sum()) == 1 and int(masks[1, 4, 3]) == 1
    assert int(masks[2].sum()) == 9 and int(masks[3, 8, 1]) == 1
    assert targets["boxes"].dtype == torch.float32 and targets["labels"].dtype == torch.int64


def test_targets_connectivity_min_voxels_and_class_mapping() -> None:
    label = torch.from_numpy(_hand_built_2d())
    targets = targets_from_label_map(label, classes={2: 1, 1: 3}, min_voxels=2, connectivity=8)
    # class 2 first (mapping order), renamed to 1; the single voxel is dropped; with
    # 8-connectivity the diagonal voxel joins the class-1 block (renamed to 3)
    assert targets["labels"].tolist() == [1, 3]
    assert targets["boxes"].tolist() == [[6, 5, 9, 8], [1, 1, 5, 4]]
    assert int(targets["masks"][1].sum()) == 7


def test_targets_from_label_map_3d_and_empty() -> None:
    label = np.zeros((6, 7, 8), dtype=np.int16)
    label[1:3, 2:5, 3:8] = 4
    targets = targets_from_label_map(label, classes=[4])
    assert targets["boxes"].tolist() == [[1, 2, 3, 3, 5, 8]]
    assert int(targets["masks"].sum()) == 2 * 3 * 5
    empty = targets_from_label_map(np.zeros((6, 7, 8), dtype=np.uint8), classes=[1, 2])
    assert empty["boxes"].shape == (0, 6)
    assert empty["labels"].shape == (0,)
    assert empty["masks"].shape == (0, 6, 7, 8)


def test_targets_from_instance_map() -> None:
    instances = np.zeros((8, 8), dtype=np.int32)
    instances[0:2, 0:2] = 5
    instances[6, 6] = 5  # a second part of instance 5
    instances[3:5, 3:6] = 2
    targets = targets_from_instance_map(instances, {2: 1, 5: 2, 9: 1})
    assert targets["labels"].tolist() == [1, 2]
    assert targets["boxes"].tolist() == [[3, 3, 5, 6], [0, 0, 7, 7]]
    assert int(targets["masks"][1].sum()) == 5
    with pytest.raises(ValueError, match=r"\[5\]"):
        targets_from_instance_map(instances, {2: 1})


def test_targets_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="integers"):
        targets_from_label_map(np.zeros((4, 4), dtype=np.float32), classes=[1])
    with pytest.raises(ValueError, match="connectivity"):
        targets_from_label_map(np.zeros((4, 4), dtype=np.uint8), classes=[1], connectivity=3)
    with pytest.raises(ValueError, match="class ids"):
        targets_from_label_map(np.zeros((4, 4), dtype=np.uint8), classes={1: 0})


def test_paste_masks_places_mask_in_box() -> None:
    mask = torch.zeros(1, 4, 4)
    mask[0, :2, :] = 1.0  # the low-X half of the RoI
    boxes = torch.tensor([[8.0, 8.0, 24.0, 16.0]])
    pasted = paste_masks(mask, boxes, torch.tensor([2]), torch.tensor([0.9]), (32, 20))
    expected = torch.zeros(32, 20, dtype=torch.int32)
    expected[8:16, 8:16] = 1
    assert torch.equal(pasted.instance_map, expected)
    assert pasted.labels == [2] and pasted.detection_index == [0]


def test_paste_masks_fractional_box_and_border() -> None:
    full = torch.ones(1, 5, 5, 5)
    boxes = torch.tensor([[10.5, -3.0, 0.2, 18.4, 4.0, 2.5]])
    pasted = paste_masks(full, boxes, torch.tensor([1]), torch.tensor([0.5]), (20, 10, 4))
    # voxels whose centre (i + 0.5) lies in the box: x 10..17, y 0..3, z 0..1
    expected = torch.zeros(20, 10, 4, dtype=torch.int32)
    expected[10:18, 0:4, 0:2] = 1
    assert torch.equal(pasted.instance_map, expected)


def test_paste_masks_overlaps_order_and_empty_detections() -> None:
    masks = torch.ones(3, 4, 4)
    masks[2] = 0.1  # below the threshold everywhere
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 24.0, 24.0]])
    scores = torch.tensor([0.6, 0.9, 0.95])
    pasted = paste_masks(masks, boxes, torch.tensor([1, 2, 1]), scores, (30, 30))
    assert pasted.detection_index == [1, 0]  # by score; detection 2 pasted nothing
    assert pasted.labels == [2, 1]
    assert pasted.scores == pytest.approx([0.9, 0.6])
    instance_map = pasted.instance_map
    assert int(instance_map[7, 7]) == 1  # overlap: the higher score wins
    assert int(instance_map[2, 2]) == 2 and int(instance_map[21, 21]) == 0
    semantic = instances_to_semantic(instance_map, pasted.labels)
    assert int(semantic[7, 7]) == 2 and int(semantic[2, 2]) == 1 and int(semantic[29, 29]) == 0
    semantic_np = instances_to_semantic(instance_map.numpy(), pasted.labels)
    assert isinstance(semantic_np, np.ndarray)
    np.testing.assert_array_equal(semantic_np, semantic.numpy())
    with pytest.raises(ValueError, match="instance ids"):
        instances_to_semantic(instance_map, [1])


@pytest.mark.parametrize("dims", [2, 3])
def test_roi_align_then_paste_recovers_the_mask(dims: int) -> None:
    grid = np.indices((40,) * dims).astype(np.float32)
    radii = np.array([9.0, 6.0, 7.0][:dims]).reshape((-1,) + (1,) * dims)
    centre = np.array([17.0, 21.0, 19.0][:dims]).reshape((-1,) + (1,) * dims)
    label = (((grid + 0.5 - centre) / radii) ** 2).sum(axis=0) <= 1.0
    targets = targets_from_label_map(label.astype(np.uint8), classes=[1])
    size = 28 if dims == 2 else 14
    roi_mask = roi_align(
        targets["masks"][:, None].float(),
        targets["boxes"],
        torch.tensor([0]),
        output_size=size,
        spatial_scale=1.0,
    )[:, 0]
    pasted = paste_masks(roi_mask, targets["boxes"], targets["labels"], torch.ones(1), label.shape)
    got = pasted.instance_map.numpy() > 0
    dice = 2 * (got & label).sum() / (got.sum() + label.sum())
    assert dice > 0.95
