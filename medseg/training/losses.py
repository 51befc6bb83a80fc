"""Segmentation losses (MONAI), with deep supervision for DynUNet's stacked outputs."""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceLoss
from torch import nn
from torch.nn.modules.loss import _Loss

from medseg.config.schema import ResolvedWorkflow
from medseg.models.registry import has_deep_supervision


def base_loss(name: str) -> _Loss:
    """``dice_ce`` (batch Dice + cross-entropy, as nnU-Net), ``dice`` or ``ce``."""
    if name == "dice_ce":
        return DiceCELoss(
            to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5
        )
    if name == "dice":
        return DiceLoss(to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
    return _CrossEntropy()


class _CrossEntropy(_Loss):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, target[:, 0].long())


class SegmentationLoss(nn.Module):
    """Loss on ``logits [B, K, *S]`` (or DynUNet's ``[B, 1 + levels, K, *S]`` in training)."""

    def __init__(self, resolved: ResolvedWorkflow) -> None:
        super().__init__()
        self.deep = has_deep_supervision(resolved)
        loss = base_loss(resolved.train.loss)
        self.loss = DeepSupervisionLoss(loss, weight_mode="exp") if self.deep else loss

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.deep and output.dim() == target.dim() + 1:
            return self.loss(list(torch.unbind(output, dim=1)), target)
        return self.loss(output, target)
