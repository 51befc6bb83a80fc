"""Mask R-CNN loss terms (float32, safe under autocast).

Every function returns a scalar that stays connected to its prediction tensor even when there is
nothing to learn from (no sampled anchors, no positive RoIs): it is then ``0 * prediction.sum()``,
a zero with a gradient path, so a step on a patch without lesions back-propagates zeros into the
heads instead of leaving their parameters out of the graph (DDP needs every parameter in the
graph unless ``find_unused_parameters=True``).
"""

from __future__ import annotations

import torch
from torch.nn.functional import binary_cross_entropy_with_logits, cross_entropy, smooth_l1_loss

__all__ = ["box_regression_loss", "classification_loss", "mask_loss", "objectness_loss"]

SMOOTH_L1_BETA = 1.0 / 9.0
"""Smooth-L1 transition point, as in torchvision's Faster R-CNN."""


def _connected_zero(prediction: torch.Tensor) -> torch.Tensor:
    return prediction.float().sum() * 0.0


def objectness_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the sampled anchors.

    Args:
        logits: ``[M]`` objectness logits of the sampled anchors.
        labels: ``[M]`` 1 for positive, 0 for negative anchors.

    Returns:
        Mean BCE over the ``M`` anchors (a connected zero when ``M == 0``).
    """
    if logits.numel() == 0:
        return _connected_zero(logits)
    return binary_cross_entropy_with_logits(logits.float(), labels.float())


def box_regression_loss(
    deltas: torch.Tensor, targets: torch.Tensor, *, normalizer: int
) -> torch.Tensor:
    """Smooth-L1 box loss summed over positives, divided by the number of samples.

    Args:
        deltas: ``[P, 2D]`` predicted deltas of the positive anchors / RoIs.
        targets: ``[P, 2D]`` encoded ground truth (MONAI ``BoxCoder``).
        normalizer: number of sampled anchors / RoIs (positives and negatives) in the batch.

    Returns:
        ``sum(smooth_l1) / max(normalizer, 1)`` (a connected zero when ``P == 0``).
    """
    if deltas.numel() == 0:
        return _connected_zero(deltas)
    loss = smooth_l1_loss(deltas.float(), targets.float(), beta=SMOOTH_L1_BETA, reduction="sum")
    return loss / max(normalizer, 1)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the sampled RoIs.

    Args:
        logits: ``[K, num_classes]``.
        labels: ``[K]`` long, 0 = background.

    Returns:
        Mean cross-entropy (a connected zero when ``K == 0``).
    """
    if logits.shape[0] == 0:
        return _connected_zero(logits)
    return cross_entropy(logits.float(), labels)


def mask_loss(
    mask_logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Per-voxel binary cross-entropy on the mask channel of each RoI's ground-truth class.

    Args:
        mask_logits: ``[K, num_classes, *M]`` for the positive RoIs.
        labels: ``[K]`` long ground-truth class of each RoI (>= 1).
        targets: ``[K, *M]`` ground-truth masks RoI-aligned to each RoI, values in ``[0, 1]``.

    Returns:
        Mean BCE over RoIs and voxels (a connected zero when ``K == 0``).
    """
    if mask_logits.shape[0] == 0:
        return _connected_zero(mask_logits)
    index = torch.arange(mask_logits.shape[0], device=labels.device)
    selected = mask_logits[index, labels]
    return binary_cross_entropy_with_logits(selected.float(), targets.float())
