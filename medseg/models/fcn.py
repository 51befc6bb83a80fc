"""Fully convolutional network with skip-fused upsampling (Long et al. 2015), 2D or 3D.

Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
A VGG-like encoder (``convs_per_level`` conv-norm-ReLU blocks per level, max-pooling between
levels) ends in two "fully connected" layers made convolutions (``head_channels`` wide, as fc6 /
fc7), then a 1x1 classifier ("score"). Coarse class scores are upsampled by learned transposed
convolutions initialised to bilinear interpolation and summed with 1x1 scores of the ``skips``
finer levels (zero-initialised, so training starts as the coarse net: FCN-32s -> 16s -> 8s); the
remaining factor is a fixed linear interpolation to the input size.

Differences from the paper: normalisation after every convolution (training from scratch, no
ImageNet weights), per-axis kernels and strides from the plan (anisotropic data), "same" padding
instead of the 100-pixel pad and crop, and any number of levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.blocks import UpSample
from monai.networks.layers.factories import Conv
from torch import nn

from medseg.config.plan import filters_for
from medseg.config.plan_archs import check_skips, resolve_options
from medseg.config.schema import ResolvedWorkflow
from medseg.models.layers import bilinear_kernel, conv_block, max_pool, resize_to

__all__ = ["FCN", "build_fcn"]


class FCN(nn.Module):
    """FCN-8s-style segmentation network.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background.
        kernels: per level, per axis conv kernel (odd; 1 along a coarse axis).
        strides: per level, per axis pooling stride into that level; the first row is all ones.
        filters: channels per level (the deepest level uses ``head_channels`` instead).
        skips: finer levels fused with the upsampled scores (2 = FCN-8s, 0 = FCN-32s); at most
            ``len(strides) - 1``.
        convs_per_level: conv blocks per encoder level.
        head_channels: width of the two fc6/fc7 convolutions at the deepest level.
        dropout: dropout after fc6 and fc7 (the paper: 0.5).
        norm: ``"instance"``, ``"batch"`` or ``"group"``.

    Input ``[B, in_channels, *S]`` with every ``S[a]`` divisible by the product of the strides
    along axis ``a``; output logits ``[B, out_channels, *S]``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernels: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        filters: Sequence[int],
        *,
        skips: int = 2,
        convs_per_level: int = 2,
        head_channels: int = 64,
        dropout: float = 0.0,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        levels = len(strides)
        if not 0 <= skips < levels:
            raise ValueError(f"skips must be in [0, {levels - 1}] for {levels} levels, got {skips}")
        widths = [*filters[: levels - 1], head_channels]
        self.stages = nn.ModuleList()
        channels = in_channels
        for level in range(levels):
            deepest = level == levels - 1
            blocks: list[nn.Module] = [max_pool(spatial_dims, strides[level])] if level else []
            for index in range(2 if deepest else convs_per_level):
                kernel = kernels[level] if index == 0 or not deepest else [1] * spatial_dims
                blocks.append(
                    conv_block(
                        spatial_dims,
                        channels,
                        widths[level],
                        kernel,
                        norm=norm,
                        dropout=dropout if deepest else 0.0,
                    )
                )
                channels = widths[level]
            self.stages.append(nn.Sequential(*blocks))
        self.score = Conv[Conv.CONV, spatial_dims](head_channels, out_channels, kernel_size=1)
        fused = [levels - 2 - k for k in range(skips)]  # finer levels, coarsest first
        self.skip_scores = nn.ModuleList(
            _zero_score(spatial_dims, widths[j], out_channels) for j in fused
        )
        self.upsamplers = nn.ModuleList(
            _bilinear_up(spatial_dims, out_channels, strides[j + 1]) for j in fused
        )
        self.fused_levels = tuple(fused)
        self.final_resize = skips < levels - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, *S]`` for images ``[B, in_channels, *S]``."""
        features: list[torch.Tensor] = []
        y = x
        for stage in self.stages:
            y = stage(y)
            features.append(y)
        score = self.score(features[-1])
        for level, up, skip in zip(self.fused_levels, self.upsamplers, self.skip_scores):
            score = up(score) + skip(features[level])
        return resize_to(score, x) if self.final_resize else score


def _zero_score(spatial_dims: int, channels: int, classes: int) -> nn.Module:
    """1x1 score layer of a skip, zero-initialised (Long et al.)."""
    layer = Conv[Conv.CONV, spatial_dims](channels, classes, kernel_size=1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _bilinear_up(spatial_dims: int, classes: int, stride: Sequence[int]) -> UpSample:
    """Learned ``stride``-fold upsampling of class scores, initialised to linear interpolation."""
    kernel = [2 * s - s % 2 for s in stride]
    up = UpSample(
        spatial_dims,
        in_channels=classes,
        out_channels=classes,
        scale_factor=list(stride),
        kernel_size=kernel,
        mode="deconv",
        bias=False,
    )
    weight = up.get_submodule("deconv").get_parameter("weight")
    with torch.no_grad():
        weight.zero_()
        for c in range(classes):
            weight[c, c] = bilinear_kernel(kernel)
    return up


def build_fcn(resolved: ResolvedWorkflow) -> FCN:
    """The workflow's FCN (``MODEL_BUILDERS["fcn"]``): planned kernels, strides and filters.

    ``model.options`` are checked again (:func:`medseg.config.plan_archs.resolve_options`), so
    a hand-edited ``resolved_workflow.yaml`` fails with a clear message.
    """
    m = resolved.model
    filters = filters_for(len(m.strides), m.base_filters, m.max_filters)
    options: dict[str, Any] = resolve_options(
        "fcn", m.options, base=m.base_filters, deepest=filters[-1]
    )
    check_skips(options, m.options, len(m.strides))
    return FCN(
        resolved.spatial_dims,
        resolved.plan.in_channels,
        resolved.num_classes,
        m.kernels,
        m.strides,
        filters,
        **options,
    )
