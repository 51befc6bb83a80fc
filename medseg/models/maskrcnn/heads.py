"""The three learned heads of Mask R-CNN: RPN, box (classification + regression) and mask.

All heads are dimension-agnostic through MONAI's layer factories (``Conv[Conv.CONV, dims]``).

Reference: He et al., "Mask R-CNN", ICCV 2017 (heads as in torchvision / Detectron2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv
from torch import nn

__all__ = ["BoxHead", "MaskHead", "RPNHead"]


class RPNHead(nn.Module):
    """Shared 3^D conv, then 1^D convs for objectness and box deltas, applied to every level.

    Args:
        spatial_dims: 2 or 3.
        channels: FPN channels.
        num_anchors: anchors per location ``A``.
    """

    def __init__(self, spatial_dims: int, channels: int, num_anchors: int) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.conv = conv(channels, channels, kernel_size=3, padding=1)
        self.cls_logits = conv(channels, num_anchors, kernel_size=1)
        self.bbox_pred = conv(channels, num_anchors * 2 * spatial_dims, kernel_size=1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(
        self, features: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return per level ``[B, A, *s]`` logits and ``[B, A * 2D, *s]`` deltas."""
        logits, deltas = [], []
        for feature in features:
            hidden = torch.relu(self.conv(feature))
            logits.append(self.cls_logits(hidden))
            deltas.append(self.bbox_pred(hidden))
        return logits, deltas


class BoxHead(nn.Module):
    """Two fully connected layers on pooled RoIs, then class logits and class-specific deltas.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of the pooled features.
        roi_size: RoIAlign bins per axis.
        hidden: width of the two hidden layers.
        num_classes: including background.
    """

    def __init__(
        self, spatial_dims: int, channels: int, roi_size: int, hidden: int, num_classes: int
    ) -> None:
        super().__init__()
        self.fc6 = nn.Linear(channels * roi_size**spatial_dims, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.cls_score = nn.Linear(hidden, num_classes)
        self.bbox_pred = nn.Linear(hidden, num_classes * 2 * spatial_dims)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``[K, C, *P]`` to ``([K, num_classes], [K, num_classes * 2D])``."""
        hidden = torch.relu(self.fc6(pooled.flatten(1)))
        hidden = torch.relu(self.fc7(hidden))
        return self.cls_score(hidden), self.bbox_pred(hidden)


class MaskHead(nn.Module):
    """``num_convs`` 3^D convs, a stride-2 transposed conv and a 1^D conv to per-class logits.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the pooled features.
        channels: width of the convs.
        num_convs: number of 3^D convs (ReLU after each).
        num_classes: including background (its channel is never trained).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, channels: int, num_convs: int, num_classes: int
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [conv(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU()]
        width = channels if num_convs else in_channels
        layers += [Conv[Conv.CONVTRANS, spatial_dims](width, channels, 2, stride=2), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.mask_logits = conv(channels, num_classes, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map ``[K, C, *P]`` to ``[K, num_classes, *(2P)]`` mask logits."""
        return self.mask_logits(self.body(pooled))
