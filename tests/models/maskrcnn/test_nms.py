"""The one-matrix NMS gives exactly MONAI's ``batched_nms`` result, in 2D and 3D."""

from __future__ import annotations

import pytest
import torch
from monai.data.box_utils import batched_nms as monai_batched_nms

from medseg.models.maskrcnn.nms import batched_nms, box_iou


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("count", [0, 1, 300])
@pytest.mark.parametrize(("threshold", "max_proposals"), [(0.3, -1), (0.7, -1), (0.5, 20)])
def test_batched_nms_equals_monai(
    dims: int, count: int, threshold: float, max_proposals: int
) -> None:
    gen = torch.Generator().manual_seed(dims * 1000 + count)
    lo = torch.rand(count, dims, generator=gen) * 40
    boxes = torch.cat([lo, lo + 1 + torch.rand(count, dims, generator=gen) * 15], dim=1)
    scores = torch.rand(count, generator=gen)
    scores[: count // 4] = 0.5  # ties keep the input order (stable sort)
    labels = torch.randint(0, 3, (count,), generator=gen)
    expected = torch.as_tensor(monai_batched_nms(boxes, scores, labels, threshold, max_proposals))
    found = batched_nms(boxes, scores, labels, threshold, max_proposals)
    assert found.dtype == torch.long
    assert torch.equal(found, expected.long())


def test_box_iou_of_empty_boxes_is_zero() -> None:
    boxes = torch.tensor([[0.0, 0, 2, 2], [1.0, 1, 1, 3]])
    assert box_iou(boxes, boxes).tolist() == [[1.0, 0.0], [0.0, 0.0]]
