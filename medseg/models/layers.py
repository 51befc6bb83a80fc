"""Small layer helpers shared by the FCN and DeepLabv3+ networks (MONAI layers, 2D or 3D).

Sizes and strides are per spatial axis, in voxels of the network input; every helper works for
``spatial_dims`` 2 and 3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from monai.networks.layers.utils import get_norm_layer
from torch import nn

__all__ = [
    "bilinear_kernel",
    "conv",
    "conv_block",
    "max_pool",
    "norm_layer",
    "norm_spec",
    "resize_to",
]

NormSpec = tuple[str, dict[str, object]]


def norm_spec(norm: str, channels: int) -> NormSpec:
    """MONAI norm argument for ``"instance"`` (affine), ``"batch"`` or ``"group"`` (<= 8 groups).

    Example:
        >>> norm_spec("group", 12)
        ('group', {'num_groups': 4})
    """
    if norm == "instance":
        return ("instance", {"affine": True})
    if norm == "group":
        return ("group", {"num_groups": next(g for g in (8, 4, 2, 1) if channels % g == 0)})
    if norm == "batch":
        return ("batch", {})
    raise ValueError(f"unknown norm {norm!r}; expected instance, batch or group")


def norm_layer(norm: str, spatial_dims: int, channels: int) -> nn.Module:
    """A normalisation layer over ``channels`` feature maps (see :func:`norm_spec`)."""
    return get_norm_layer(norm_spec(norm, channels), spatial_dims=spatial_dims, channels=channels)


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int],
    *,
    stride: Sequence[int] | int = 1,
    dilation: Sequence[int] | int = 1,
    bias: bool = False,
) -> nn.Module:
    """Plain convolution with "same" padding (``dilation * (kernel - 1) / 2`` per axis).

    Kaiming-normal weights (fan out, ReLU), as MONAI's ResNet initialises its convolutions.
    """
    dil = [dilation] * spatial_dims if isinstance(dilation, int) else list(dilation)
    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dil))
    layer = Conv[Conv.CONV, spatial_dims](
        in_channels,
        out_channels,
        kernel_size=tuple(kernel),
        stride=stride,
        padding=padding,
        dilation=tuple(dil),
        bias=bias,
    )
    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    return layer


def conv_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int] | int,
    *,
    norm: str,
    dropout: float = 0.0,
) -> Convolution:
    """MONAI ``Convolution``: conv (same padding) -> norm -> dropout -> ReLU."""
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernel,
        act=("relu", {"inplace": True}),
        norm=norm_spec(norm, out_channels),
        dropout=dropout or None,
        bias=False,
    )


def max_pool(spatial_dims: int, stride: Sequence[int]) -> nn.Module:
    """Max-pooling by ``stride`` per axis: kernel 3 (padding 1) where strided, 1 elsewhere.

    An input size divisible by ``stride`` gives exactly ``size / stride``.
    """
    kernel = tuple(3 if s > 1 else 1 for s in stride)
    padding = tuple(k // 2 for k in kernel)
    return Pool[Pool.MAX, spatial_dims](kernel_size=kernel, stride=tuple(stride), padding=padding)


def resize_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Bi/trilinear resampling of ``x`` ``[B, C, *S]`` to the spatial size of ``reference``.

    ``align_corners=False``: the voxel grids share their outer edges (a stride-``s`` feature
    map's voxel covers ``s`` input voxels), as DeepLab's and FCN's upsampling assume.
    """
    mode = "bilinear" if x.dim() == 4 else "trilinear"
    return F.interpolate(x, size=reference.shape[2:], mode=mode, align_corners=False)


def bilinear_kernel(kernel: Sequence[int]) -> torch.Tensor:
    """Separable bi/trilinear upsampling filter of shape ``kernel`` (Long et al.'s initialisation).

    For a transposed convolution of stride ``s`` and kernel ``2 s - s % 2`` along an axis, this
    filter makes it an exact linear interpolation; a kernel of 1 is the identity.
    """
    weight = torch.ones(())
    for k in kernel:
        factor = (k + 1) // 2
        centre = factor - 1 if k % 2 == 1 else factor - 0.5
        taps = 1 - torch.abs(torch.arange(k, dtype=torch.float32) - centre) / factor
        weight = weight.unsqueeze(-1) * taps
    return weight
