"""IoU-threshold matching of anchors/proposals to ground truth, and balanced sampling.

Same rules as Faster R-CNN (torchvision ``Matcher`` and ``BalancedPositiveNegativeSampler``),
written for N-D boxes through MONAI's ``box_iou``. MONAI's ATSS matcher picks positives by centre
distance statistics instead, which is not what the RPN and RoI heads of Mask R-CNN use.

Reference: Ren et al., "Faster R-CNN", NeurIPS 2015.
"""

from __future__ import annotations

import torch
from monai.data.box_utils import box_iou

__all__ = ["BELOW_LOW", "BETWEEN", "match_boxes", "sample_balanced"]

BELOW_LOW = -1
"""Match value of a negative (IoU below the low threshold with every ground-truth box)."""
BETWEEN = -2
"""Match value of an ignored box (best IoU between the thresholds)."""


def match_boxes(
    gt_boxes: torch.Tensor,
    boxes: torch.Tensor,
    *,
    high: float,
    low: float,
    allow_low_quality: bool,
) -> torch.Tensor:
    """Match every box to its best ground-truth box.

    Args:
        gt_boxes: ``[G, 2D]`` ground truth, StandardMode, voxels.
        boxes: ``[N, 2D]`` anchors or proposals, same frame.
        high: IoU >= ``high`` -> matched (foreground).
        low: IoU < ``low`` -> :data:`BELOW_LOW`; in ``[low, high)`` -> :data:`BETWEEN`.
        allow_low_quality: also match, for each ground-truth box, the boxes with its highest
            (non-zero) IoU, whatever the thresholds (the RPN rule, so that no object goes without
            an anchor).

    Returns:
        ``[N]`` long: index into ``gt_boxes``, or :data:`BELOW_LOW` / :data:`BETWEEN`. All
        :data:`BELOW_LOW` when there is no ground truth.
    """
    if gt_boxes.shape[0] == 0:
        return torch.full((boxes.shape[0],), BELOW_LOW, dtype=torch.long, device=boxes.device)
    iou = torch.as_tensor(box_iou(gt_boxes.float(), boxes.float()))  # [G, N]
    best_iou, matches = iou.max(dim=0)
    result = matches.clone()
    result[best_iou < low] = BELOW_LOW
    result[(best_iou >= low) & (best_iou < high)] = BETWEEN
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # [G, 1]
        is_best = (iou == best_per_gt) & (best_per_gt > 0)
        box_idx = is_best.any(dim=0).nonzero().squeeze(1)
        result[box_idx] = matches[box_idx]
    return result


def sample_balanced(
    labels: torch.Tensor, *, batch_size: int, positive_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample positives and negatives at random, at most ``positive_fraction`` positives.

    Args:
        labels: ``[N]`` with > 0 positive, 0 negative and < 0 ignored.
        batch_size: number of samples wanted (fewer when there are not enough candidates).
        positive_fraction: largest share of positives; negatives fill the rest.

    Returns:
        ``(positive_indices, negative_indices)``, long tensors into ``labels``.
    """
    positive = (labels > 0).nonzero().squeeze(1)
    negative = (labels == 0).nonzero().squeeze(1)
    num_pos = min(int(batch_size * positive_fraction), positive.numel())
    num_neg = min(batch_size - num_pos, negative.numel())
    pos_pick = torch.randperm(positive.numel(), device=labels.device)[:num_pos]
    neg_pick = torch.randperm(negative.numel(), device=labels.device)[:num_neg]
    return positive[pos_pick], negative[neg_pick]
