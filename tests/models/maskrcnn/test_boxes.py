"""Box coding, matching, sampling and NMS as the Mask R-CNN pipeline uses them."""

from __future__ import annotations

import pytest
import torch

from medseg.models.maskrcnn import build_maskrcnn
from medseg.models.maskrcnn.matcher import BELOW_LOW, BETWEEN, match_boxes, sample_balanced
from medseg.models.maskrcnn.rpn import clip_and_filter


def _random_boxes(n: int, dims: int, gen: torch.Generator) -> torch.Tensor:
    lo = torch.rand(n, dims, generator=gen) * 50
    return torch.cat([lo, lo + 1 + torch.rand(n, dims, generator=gen) * 30], dim=1)


@pytest.mark.parametrize("dims", [2, 3])
def test_box_coders_round_trip(dims: int, tiny: dict) -> None:
    model = build_maskrcnn(dims, 1, 3, **tiny)
    gen = torch.Generator().manual_seed(dims)
    gt, reference = _random_boxes(20, dims, gen), _random_boxes(20, dims, gen)
    for coder in (model.rpn.box_coder, model.roi_heads.box_coder):
        codes = coder.encode_single(gt, reference)
        torch.testing.assert_close(coder.decode_single(codes, reference), gt, atol=1e-4, rtol=0)
    # RoI head weights (10, .., 5, ..): a unit centre shift over a 10-voxel box codes as 1
    box = torch.tensor([[0.0] * dims + [10.0] * dims])
    shifted = box + torch.tensor([1.0] + [0.0] * (dims - 1) + [1.0] + [0.0] * (dims - 1))
    codes = model.roi_heads.box_coder.encode_single(shifted, box)
    torch.testing.assert_close(codes, torch.tensor([[1.0] + [0.0] * (2 * dims - 1)]))


def test_class_specific_decoding_picks_each_class_block() -> None:
    model = build_maskrcnn(2, 1, 3, backbone_depth=10)
    coder = model.roi_heads.box_coder
    proposals = torch.tensor([[10.0, 10.0, 20.0, 30.0]])
    deltas = torch.zeros(1, 3 * 4)
    deltas[0, 4 + 0] = 10.0  # class 1: shift x by one box width (weight 10)
    deltas[0, 8 + 3] = 5.0 * torch.log(torch.tensor(2.0))  # class 2: double the height
    boxes = coder.decode_single(deltas, proposals).reshape(1, 3, 4)
    torch.testing.assert_close(boxes[0, 0], proposals[0])
    torch.testing.assert_close(boxes[0, 1], torch.tensor([20.0, 10.0, 30.0, 30.0]))
    torch.testing.assert_close(boxes[0, 2], torch.tensor([10.0, 0.0, 20.0, 40.0]))


def test_match_boxes_thresholds_and_low_quality() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 9.0],  # IoU 0.9 with gt 0
            [0.0, 0.0, 10.0, 5.0],  # IoU 0.5 with gt 0 -> between
            [30.0, 30.0, 40.0, 40.0],  # no overlap -> negative
            [52.0, 50.0, 62.0, 60.0],  # IoU 8/12 = 0.67 with gt 1, its best box
            [53.0, 50.0, 63.0, 60.0],  # IoU 7/13 with gt 1 -> between
        ]
    )
    matches = match_boxes(gt, boxes, high=0.7, low=0.3, allow_low_quality=False)
    assert matches.tolist() == [0, BETWEEN, BELOW_LOW, BETWEEN, BETWEEN]
    matches = match_boxes(gt, boxes, high=0.7, low=0.3, allow_low_quality=True)
    assert matches.tolist() == [0, BETWEEN, BELOW_LOW, 1, BETWEEN]
    empty = match_boxes(torch.zeros(0, 4), boxes, high=0.7, low=0.3, allow_low_quality=True)
    assert empty.tolist() == [BELOW_LOW] * 5


def test_low_quality_matching_ignores_gt_without_overlap() -> None:
    gt = torch.tensor([[100.0, 100.0, 110.0, 110.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    matches = match_boxes(gt, boxes, high=0.7, low=0.3, allow_low_quality=True)
    assert matches.tolist() == [BELOW_LOW, BELOW_LOW]


def test_sample_balanced_respects_fraction_and_ignores() -> None:
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 50)
    pos, neg = sample_balanced(labels, batch_size=32, positive_fraction=0.25)
    assert len(pos) == 8 and len(neg) == 24
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())
    assert len(set(pos.tolist())) == 8 and len(set(neg.tolist())) == 24
    pos, neg = sample_balanced(labels[:12], batch_size=32, positive_fraction=0.5)
    assert len(pos) == 10 and len(neg) == 2  # not enough of either: take all


def test_clip_and_filter() -> None:
    boxes = torch.tensor([[-5.0, 2.0, 10.0, 70.0], [3.0, 3.0, 3.005, 8.0], [60.0, 1.0, 90.0, 9.0]])
    kept, keep = clip_and_filter(boxes, (64, 64), min_size=0.01)
    assert keep.tolist() == [True, False, True]
    torch.testing.assert_close(kept, torch.tensor([[0.0, 2.0, 10.0, 64.0], [60.0, 1.0, 64.0, 9.0]]))


def test_detection_nms_keeps_expected_boxes(tiny: dict) -> None:
    model = build_maskrcnn(2, 1, 3, **tiny, score_threshold=0.2, nms_threshold=0.5)
    proposals = torch.tensor(
        [
            [10.0, 10.0, 30.0, 30.0],  # class 1, best
            [11.0, 11.0, 31.0, 31.0],  # class 1, IoU 0.82 with the best -> suppressed
            [11.0, 10.0, 31.0, 30.0],  # class 2: NMS is per class -> kept
            [40.0, 40.0, 50.0, 50.0],  # class 1, no overlap -> kept
            [40.0, 10.0, 50.0, 20.0],  # background -> dropped
        ]
    )
    probabilities = torch.tensor(
        [[0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1], [0.9, 0.05, 0.05]]
    )
    deltas = torch.zeros(5, 3 * 4)  # boxes = proposals
    result = model.roi_heads._postprocess(probabilities.log(), deltas, proposals, (64, 64))
    assert result["labels"].tolist() == [1, 2, 1]
    torch.testing.assert_close(result["boxes"], proposals[[0, 2, 3]])
    torch.testing.assert_close(result["scores"], torch.tensor([0.9, 0.8, 0.6]))
