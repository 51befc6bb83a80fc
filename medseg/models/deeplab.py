"""DeepLabv3+ (Chen et al. 2018) on a MONAI ResNet encoder, 2D or 3D.

Chen, Zhu, Papandreou, Schroff and Adam, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", ECCV 2018 (DeepLabv3+); ASPP from Chen et al. 2017 (DeepLabv3).

* **Encoder**: a ResNet of MONAI ``ResNetBlock`` / ``ResNetBottleneck`` blocks
  (:mod:`monai.networks.nets.resnet`): a 7^d stem convolution and a max-pool (stride 4 together),
  then layers 1-4. The planned ``strides`` rows 1.. are the downsampling of the stem convolution,
  the max-pool, layer 2 and (output stride 16) layer 3; the layers after the output stride are
  dilated instead of strided (rates 2, then 4), as torchvision's ``replace_stride_with_dilation``.
* **ASPP**: MONAI ``SimpleASPP`` (a 1x1 branch and one dilated 3^d branch per rate) plus an
  image-pooling branch (global average, 1x1 conv, broadcast), projected by a 1x1 conv.
* **Decoder**: 1x1-projected low-level features of layer 1 (stride 4) concatenated with the
  upsampled ASPP output, two 3^d conv blocks, a 1x1 classifier, and linear upsampling to the input.

Anisotropy: kernels are 1 along an axis the plan marks coarse at that stage, and dilation (in the
dilated layers and in ASPP) applies only along the axes strided by the last downsampling stage,
so a coarse or short axis is neither strided nor dilated. Input sizes need not be divisible by
the output stride (the decoder resamples to the exact sizes), but planned patches are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import SimpleASPP
from monai.networks.layers.factories import Conv, Pool
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import nn

from medseg.config.plan import filters_for
from medseg.config.plan_archs import resolve_options
from medseg.config.schema import ResolvedWorkflow
from medseg.models.layers import conv, conv_block, max_pool, norm_layer, norm_spec, resize_to

__all__ = ["DeepLabV3Plus", "build_deeplabv3plus"]

BLOCKS: dict[int, tuple[type[ResNetBlock] | type[ResNetBottleneck], list[int]]] = {
    10: (ResNetBlock, [1, 1, 1, 1]),
    18: (ResNetBlock, [2, 2, 2, 2]),
    34: (ResNetBlock, [3, 4, 6, 3]),
    50: (ResNetBottleneck, [3, 4, 6, 3]),
}


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ for 2D or 3D semantic segmentation.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background.
        kernels: per planned stage, per axis kernel (3, or 1 along a coarse axis); same length as
            ``strides``.
        strides: ``log2(output_stride) + 1`` rows of per-axis strides (1 or 2); row 0 all ones,
            then the stem conv, the max-pool, layer 2 and (output stride 16) layer 3.
        widths: channels of ResNet layers 1-4 (times 4 with bottleneck blocks).
        output_stride: 8 or 16; ``strides`` must have ``log2(output_stride) + 1`` rows.
        backbone_depth: 10, 18, 34 (basic blocks) or 50 (bottlenecks).
        aspp_dilations: rates of the dilated 3^d ASPP branches (beside the 1x1 branch).
        aspp_channels: channels of each ASPP branch and of its projection.
        image_pooling: add DeepLabv3's global-average-pooling branch to ASPP.
        low_level_channels: channels of the projected layer-1 features.
        decoder_channels: channels of the two decoder conv blocks.
        dropout: dropout in the ASPP projection and the decoder blocks.
        norm: ``"instance"``, ``"batch"`` or ``"group"``.

    Input ``[B, in_channels, *S]``; output logits ``[B, out_channels, *S]``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernels: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        widths: Sequence[int],
        *,
        output_stride: int = 16,
        backbone_depth: int = 18,
        aspp_dilations: Sequence[int] = (2, 4, 6),
        aspp_channels: int = 128,
        image_pooling: bool = True,
        low_level_channels: int = 48,
        decoder_channels: int = 128,
        dropout: float = 0.0,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        rows = {8: 4, 16: 5}.get(output_stride)
        if rows is None or len(strides) != rows or len(kernels) != rows:
            raise ValueError(
                f"output stride {output_stride} needs {rows} stride and kernel rows, "
                f"got {len(strides)} and {len(kernels)}"
            )
        self.encoder = _ResNetEncoder(
            spatial_dims, in_channels, kernels, strides, widths, backbone_depth, norm
        )
        self.aspp = _ASPP(
            spatial_dims,
            self.encoder.out_channels,
            aspp_channels,
            kernel=_context_kernel(kernels, strides),
            rates=[[r if a else 1 for a in _dilated_axes(strides)] for r in aspp_dilations],
            image_pooling=image_pooling,
            norm=norm,
            dropout=dropout,
        )
        low_kernel = kernels[2]
        self.low_level = conv_block(
            spatial_dims, self.encoder.low_channels, low_level_channels, 1, norm=norm
        )
        self.decoder = nn.Sequential(
            conv_block(
                spatial_dims,
                aspp_channels + low_level_channels,
                decoder_channels,
                low_kernel,
                norm=norm,
                dropout=dropout,
            ),
            conv_block(
                spatial_dims,
                decoder_channels,
                decoder_channels,
                low_kernel,
                norm=norm,
                dropout=dropout,
            ),
        )
        self.classifier = Conv[Conv.CONV, spatial_dims](
            decoder_channels, out_channels, kernel_size=1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, *S]`` for images ``[B, in_channels, *S]``."""
        low, deep = self.encoder(x)
        context = resize_to(self.aspp(deep), low)
        y = self.decoder(torch.cat([context, self.low_level(low)], dim=1))
        return resize_to(self.classifier(y), x)


def _dilated_axes(strides: Sequence[Sequence[int]]) -> list[bool]:
    """Axes that dilation applies to: those strided by the last stage that strides any axis.

    An axis the plan stopped striding earlier (coarse, or its feature map already short) is
    neither dilated in layers 3-4 nor in ASPP; with no downsampling at all nothing is dilated.
    """
    for row in reversed(strides[1:]):
        if any(s > 1 for s in row):
            return [s > 1 for s in row]
    return [False] * len(strides[0])


def _layer_plan(
    kernels: Sequence[Sequence[int]], strides: Sequence[Sequence[int]]
) -> list[tuple[list[int], list[int], list[int]]]:
    """(stride, kernel, dilation) of ResNet layers 1-4.

    Layer 1 follows the max-pool at stride 1; layers 2 (and 3, output stride 16) take the planned
    strides of rows 3 (and 4); the layers after them are dilated by 2, then 4, along
    :func:`_dilated_axes`, with :func:`_context_kernel`.
    """
    ones = [1] * len(strides[0])
    axes = _dilated_axes(strides)
    n_strided = len(strides) - 3
    plan = [(ones, list(kernels[2]), ones)]
    for index in range(1, 4):
        if index <= n_strided:
            plan.append((list(strides[index + 2]), list(kernels[index + 2]), ones))
        else:
            rate = 2 ** (index - n_strided)
            plan.append((ones, _context_kernel(kernels, strides), [rate if a else 1 for a in axes]))
    return plan


def _context_kernel(
    kernels: Sequence[Sequence[int]], strides: Sequence[Sequence[int]]
) -> list[int]:
    """Kernel of the dilated layers and ASPP: 3 along dilated axes, else the last planned one.

    Dilation stands in for the striding that would have continued along the fine axes, so they
    keep a 3-kernel even where the plan's last row, anticipating the next pooling, has 1 (a short
    axis left unstrided can become the finest at the deepest stage).
    """
    axes = _dilated_axes(strides)
    return [3 if a else int(k) for a, k in zip(axes, kernels[-1])]


class _ResNetEncoder(nn.Module):
    """Stem + ResNet layers 1-4; returns (layer-1 features, layer-4 features)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        kernels: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        widths: Sequence[int],
        depth: int,
        norm: str,
    ) -> None:
        super().__init__()
        block, counts = BLOCKS[depth]
        stem_kernel = [7 if k > 1 else 1 for k in kernels[1]]
        self.stem = nn.Sequential(
            conv(spatial_dims, in_channels, widths[0], stem_kernel, stride=strides[1]),
            norm_layer(norm, spatial_dims, widths[0]),
            nn.ReLU(inplace=True),
            max_pool(spatial_dims, strides[2]),
        )
        self.layers = nn.ModuleList()
        channels = widths[0]
        for (stride, kernel, dilation), width, count in zip(
            _layer_plan(kernels, strides), widths, counts
        ):
            layer, channels = _resnet_layer(
                block, spatial_dims, channels, width, count, stride, kernel, dilation, norm
            )
            self.layers.append(layer)
        self.low_channels = widths[0] * block.expansion
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, C, *S]`` -> layer-1 features (stride 4) and layer-4 features."""
        low = self.layers[0](self.stem(x))
        deep = low
        for layer in self.layers[1:]:
            deep = layer(deep)
        return low, deep


def _resnet_layer(
    block: type[ResNetBlock] | type[ResNetBottleneck],
    spatial_dims: int,
    in_channels: int,
    planes: int,
    count: int,
    stride: Sequence[int],
    kernel: Sequence[int],
    dilation: Sequence[int],
    norm: str,
) -> tuple[nn.Sequential, int]:
    """``count`` MONAI residual blocks; the first strides; 3^d convs get ``kernel``/``dilation``.

    Returns the layer and its output channels (``planes * block.expansion``).
    """
    out_channels = planes * block.expansion
    blocks: list[nn.Module] = []
    for index in range(count):
        first = index == 0
        step = list(stride) if first else [1] * spatial_dims
        downsample = None
        if first and (any(s > 1 for s in step) or in_channels != out_channels):
            downsample = nn.Sequential(
                conv(spatial_dims, in_channels, out_channels, [1] * spatial_dims, stride=step),
                norm_layer(norm, spatial_dims, out_channels),
            )
        unit = block(
            in_planes=in_channels if first else out_channels,
            planes=planes,
            spatial_dims=spatial_dims,
            stride=step,  # type: ignore[arg-type]  # per-axis strides reach the MONAI conv
            downsample=downsample,
            norm=norm_spec(norm, planes),
        )
        _shape_convs(unit, spatial_dims, kernel, dilation)
        blocks.append(unit)
    return nn.Sequential(*blocks), out_channels


def _shape_convs(
    unit: nn.Module, spatial_dims: int, kernel: Sequence[int], dilation: Sequence[int]
) -> None:
    """Replace the block's 3^d convolutions by ``kernel``/``dilation`` ones (same stride)."""
    for name in ("conv1", "conv2", "conv3"):
        old = getattr(unit, name, None)
        if not isinstance(old, nn.Conv2d | nn.Conv3d) or max(old.kernel_size) == 1:
            continue
        setattr(
            unit,
            name,
            conv(
                spatial_dims,
                old.in_channels,
                old.out_channels,
                kernel,
                stride=old.stride,
                dilation=[d if k > 1 else 1 for k, d in zip(kernel, dilation)],
            ),
        )


class _ASPP(nn.Module):
    """MONAI ``SimpleASPP`` (+ optional image pooling) and a 1x1 projection."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int,
        *,
        kernel: Sequence[int],
        rates: Sequence[Sequence[int]],
        image_pooling: bool,
        norm: str,
        dropout: float,
    ) -> None:
        super().__init__()
        one = [1] * spatial_dims
        kernels = [one] + [list(kernel) for _ in rates]
        dilations = [one] + [[r if k > 1 else 1 for r, k in zip(rate, kernel)] for rate in rates]
        self.branches = SimpleASPP(
            spatial_dims,
            in_channels,
            channels,
            kernel_sizes=kernels,  # type: ignore[arg-type]  # per-axis sizes work in MONAI's Conv
            dilations=dilations,  # type: ignore[arg-type]
            norm_type=norm_spec(norm, channels * len(kernels)),
            acti_type=("relu", {"inplace": True}),
        )
        self.pooling: nn.Module | None = None
        if image_pooling:
            self.pooling = nn.Sequential(
                Pool[Pool.ADAPTIVEAVG, spatial_dims](1),
                Conv[Conv.CONV, spatial_dims](in_channels, channels, kernel_size=1),
                nn.ReLU(inplace=True),
            )
        total = channels * (len(kernels) + int(image_pooling))
        self.project = conv_block(spatial_dims, total, channels, 1, norm=norm, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, *S]`` -> ``[B, channels, *S]``."""
        y = self.branches(x)
        if self.pooling is not None:
            pooled = self.pooling(x).expand(-1, -1, *x.shape[2:])
            y = torch.cat([y, pooled], dim=1)
        return self.project(y)


def build_deeplabv3plus(resolved: ResolvedWorkflow) -> DeepLabV3Plus:
    """The workflow's DeepLabv3+ (``MODEL_BUILDERS["deeplabv3plus"]``).

    ResNet widths are ``base_filters * 2**i`` (capped at ``max_filters``) for layers 1-4;
    ``model.options`` are checked again, so a hand-edited ``resolved_workflow.yaml`` fails with
    a clear message.
    """
    m = resolved.model
    options = resolve_options("deeplabv3plus", m.options, base=m.base_filters)
    return DeepLabV3Plus(
        resolved.spatial_dims,
        resolved.plan.in_channels,
        resolved.num_classes,
        m.kernels,
        m.strides,
        filters_for(4, m.base_filters, m.max_filters),
        **options,
    )
