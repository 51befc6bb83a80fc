"""ResNet + FPN feature extractor on MONAI blocks (2D or 3D).

MONAI's ``BackboneWithFPN`` gathers intermediate layers with torchvision's
``IntermediateLayerGetter``; medseg does not use torchvision, so :class:`ResNetFPN` runs the MONAI
``ResNet`` stem and layers itself and feeds them to MONAI's ``FeaturePyramidNetwork`` with a
``LastLevelMaxPool`` extra level, as ``monai.apps.detection`` does for RetinaNet. ResNet layers
after the last returned one are dropped, so every parameter is used in a training step (DDP
without ``find_unused_parameters``).

Reference: Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from monai.networks.blocks.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
)
from monai.networks.nets.resnet import ResNet
from torch import nn

__all__ = ["ResNetFPN"]

_LAYERS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


class ResNetFPN(nn.Module):
    """MONAI ResNet (basic blocks) with an FPN on the selected layers.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        depth: 10, 18 or 34 (blocks per layer as in MONAI ``resnet10/18/34``).
        widths: channels of ResNet layers 1-4.
        returned_layers: increasing subset of 1-4 fed to the FPN; layer ``k`` has stride
            ``2 ** (k + 1)`` (stride-2 7^d stem conv, then a stride-2 max-pool).
        fpn_channels: channels of every output level.
        norm: ``"group"``, ``"batch"`` or ``"instance"``; replaces MONAI's batch norms.

    Attributes:
        strides: stride of every output level in input voxels (the last is the max-pooled level).
        out_channels: ``fpn_channels``.
    """

    def __init__(
        self,
        *,
        spatial_dims: int,
        in_channels: int,
        depth: int,
        widths: tuple[int, ...],
        returned_layers: tuple[int, ...],
        fpn_channels: int,
        norm: str = "group",
    ) -> None:
        super().__init__()
        resnet = ResNet(
            block="basic",
            layers=_LAYERS[depth],
            block_inplanes=list(widths),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            feed_forward=False,
            bias_downsample=False,
        )
        if norm != "batch":
            _replace_batch_norms(resnet, norm)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.act, resnet.maxpool)
        last = max(returned_layers)
        self.layers = nn.ModuleList(getattr(resnet, f"layer{k}") for k in range(1, last + 1))
        self.returned_layers = tuple(returned_layers)
        self.fpn = FeaturePyramidNetwork(
            spatial_dims=spatial_dims,
            in_channels_list=[widths[k - 1] for k in returned_layers],
            out_channels=fpn_channels,
            extra_blocks=LastLevelMaxPool(spatial_dims),
        )
        strides = [2 ** (k + 1) for k in returned_layers]
        self.strides: tuple[int, ...] = (*strides, 2 * strides[-1])
        self.out_channels = fpn_channels

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Compute the pyramid.

        Args:
            images: ``[B, C, *spatial]``; each spatial size divisible by ``max(strides)``.

        Returns:
            One ``[B, fpn_channels, *(spatial / stride)]`` map per level, finest first; the last
            is the max-pooled level (used by the RPN only).
        """
        x = self.stem(images)
        selected: OrderedDict[str, torch.Tensor] = OrderedDict()
        for k, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if k in self.returned_layers:
                selected[str(k)] = x
        return list(self.fpn(selected).values())


def _replace_batch_norms(module: nn.Module, norm: str) -> None:
    """Swap every ``BatchNorm{2,3}d`` in ``module`` for group or instance norm, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, _make_norm(norm, child.num_features))
        else:
            _replace_batch_norms(child, norm)


def _make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    # instance norm (affine) for 2D and 3D alike: one group per channel
    return nn.GroupNorm(channels, channels)
