"""U-Net builders on MONAI networks; 2D or 3D is the ``spatial_dims`` parameter."""

from __future__ import annotations

from typing import Any

from torch import nn

from medseg.config.plan import filters_for
from medseg.config.schema import ResolvedWorkflow


def build_dynunet(resolved: ResolvedWorkflow) -> nn.Module:
    """nnU-Net-style DynUNet with the planned kernels, strides and filters.

    Instance norm, leaky ReLU, deep supervision heads at ``model.deep_supervision_levels``
    decoder levels when ``model.deep_supervision`` is on (training returns stacked outputs).
    """
    from monai.networks.nets import DynUNet

    m = resolved.model
    strides: list[list[int]] = m.strides
    options: dict[str, Any] = {"res_block": False, **m.options}
    return DynUNet(
        spatial_dims=resolved.spatial_dims,
        in_channels=resolved.plan.in_channels,
        out_channels=resolved.num_classes,
        kernel_size=m.kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters_for(len(strides), int(m.base_filters), int(m.max_filters)),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=m.deep_supervision,
        deep_supr_num=int(m.deep_supervision_levels),
        **options,
    )


def build_segresnet(resolved: ResolvedWorkflow) -> nn.Module:
    """MONAI SegResNet (no deep supervision); ``model.options`` go to its constructor."""
    from monai.networks.nets import SegResNet

    options: dict[str, Any] = {
        "init_filters": int(resolved.model.base_filters),
        **resolved.model.options,
    }
    return SegResNet(
        spatial_dims=resolved.spatial_dims,
        in_channels=resolved.plan.in_channels,
        out_channels=resolved.num_classes,
        **options,
    )
