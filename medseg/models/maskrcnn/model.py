"""Mask R-CNN for 2D and 3D images, and its builder.

Reference: He et al., "Mask R-CNN", ICCV 2017; the N-D generalisation follows Jaeger et al.,
"Retina U-Net" / the Medical Detection Toolkit (3D RoIAlign, 3D anchors).

Frames: images are ``[B, C, X, Y(, Z)]`` (medseg's ``(X, Y[, Z])`` array order). Boxes are MONAI
``StandardMode`` (2D ``xyxy``, 3D ``xyzxyz``: min corners, then max corners) in voxel units of the
input tensor, voxel ``i`` spanning ``[i, i + 1)``, so a component covering voxels ``a..b`` along an
axis has box ``[a, b + 1]`` there (as :func:`~medseg.models.maskrcnn.targets_from_label_map`
builds them and MONAI's ``convert_mask_to_box`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from medseg.models.maskrcnn.backbone import ResNetFPN
from medseg.models.maskrcnn.config import MaskRCNNConfig, resolve_config
from medseg.models.maskrcnn.roi_heads import RoIHeads
from medseg.models.maskrcnn.rpn import RegionProposalNetwork

__all__ = ["MaskRCNN", "build_maskrcnn"]

logger = logging.getLogger(__name__)

Target = Mapping[str, torch.Tensor]


def build_maskrcnn(
    spatial_dims: int, in_channels: int, num_classes: int, **config: Any
) -> MaskRCNN:
    """Build a Mask R-CNN from flat options (e.g. the ``model`` section of a workflow YAML).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        num_classes: number of classes *including* background 0.
        **config: any :class:`~medseg.models.maskrcnn.config.MaskRCNNConfig` field; omitted or
            ``None`` options take the defaults documented there.

    Returns:
        The model, in training mode, on the CPU; ``model.config`` holds every resolved option.

    Raises:
        ConfigError: an unknown option or an invalid value.

    Example:
        >>> model = build_maskrcnn(2, 1, 3, backbone_depth=10, fpn_channels=16)
        >>> model.size_divisible
        32
    """
    resolved = resolve_config(spatial_dims, in_channels, num_classes, **config)
    model = MaskRCNN(resolved)
    logger.debug("built %dD Mask R-CNN with %d parameters", spatial_dims, model.num_parameters)
    return model


class MaskRCNN(nn.Module):
    """Mask R-CNN: ResNet-FPN backbone, RPN, box head and mask head, for 2D or 3D.

    ``forward(images, targets)`` returns a dict of losses in training mode and one detection dict
    per image in eval mode (see :meth:`forward`). Sum the losses to train.

    Args:
        config: resolved options (use :func:`build_maskrcnn` to build from a dict).
    """

    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetFPN(
            spatial_dims=config.spatial_dims,
            in_channels=config.in_channels,
            depth=config.backbone_depth,
            widths=config.backbone_widths,
            returned_layers=config.returned_layers,
            fpn_channels=config.fpn_channels,
            norm=config.norm,
        )
        self.rpn = RegionProposalNetwork(config)
        self.roi_heads = RoIHeads(config, self.backbone.strides[:-1])

    @property
    def size_divisible(self) -> int:
        """Every spatial size of the input must be a multiple of this (the coarsest stride)."""
        return max(self.backbone.strides)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self, images: torch.Tensor, targets: Sequence[Target] | None = None
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Compute losses (training mode) or detections (eval mode).

        Args:
            images: ``[B, C, X, Y(, Z)]``, spatial sizes multiples of :attr:`size_divisible`.
            targets: training only, one dict per image with ``boxes`` float ``[N, 2D]``
                (StandardMode, input voxels, positive size), ``labels`` long ``[N]`` in
                ``1..num_classes-1`` and ``masks`` ``[N, X, Y(, Z)]`` (bool/uint8/float, 1 inside
                the instance). ``N`` may be 0: the box regression and mask losses are then zero
                but still connected to the graph, and the RPN and classifier learn "background".

        Returns:
            Training: ``{"loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box",
            "loss_mask"}`` float32 scalars. Eval: per image ``boxes`` float32 ``[K, 2D]`` in
            input voxels, ``scores`` ``[K]`` (sorted descending, at most ``max_detections``
            after per-class NMS), ``labels`` long ``[K]`` in ``1..num_classes-1`` and ``masks``
            float32 ``[K, M, M(, M)]``: probabilities on the ``M^D`` grid of each box
            (``M = config.mask_size``), for the predicted label; paste them with
            :func:`~medseg.models.maskrcnn.paste_masks`.

        Raises:
            ValueError: wrong image shape, or missing / malformed targets in training mode.
        """
        self._check_images(images)
        image_shape = tuple(images.shape[2:])
        if self.training:
            targets = _check_targets(targets, images, self.config.num_classes)
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(features, image_shape, targets)
        if self.training:
            assert targets is not None  # checked above
            return {**rpn_losses, **self.roi_heads.losses(features[:-1], proposals, targets)}
        return self.roi_heads.detect(features[:-1], proposals, image_shape)

    def _check_images(self, images: torch.Tensor) -> None:
        dims, step = self.config.spatial_dims, self.size_divisible
        if images.dim() != dims + 2 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"MaskRCNN expects images [B, {self.config.in_channels}, *spatial] with {dims} "
                f"spatial axes, got shape {tuple(images.shape)}"
            )
        if any(n % step for n in images.shape[2:]):
            raise ValueError(
                f"MaskRCNN input spatial shape {tuple(images.shape[2:])} must be a multiple of "
                f"{step} on every axis (pad or crop the patch)"
            )


def _check_targets(
    targets: Sequence[Target] | None, images: torch.Tensor, num_classes: int
) -> list[dict[str, torch.Tensor]]:
    """Validate training targets and move them to the images' device (boxes as float32)."""
    if targets is None or len(targets) != images.shape[0]:
        count = None if targets is None else len(targets)
        raise ValueError(f"training needs one target per image: {images.shape[0]} images, {count}")
    dims, spatial = images.dim() - 2, tuple(images.shape[2:])
    checked = []
    for i, target in enumerate(targets):
        boxes = torch.as_tensor(target["boxes"], device=images.device).float().reshape(-1, 2 * dims)
        labels = torch.as_tensor(target["labels"], device=images.device).long().reshape(-1)
        masks = torch.as_tensor(target["masks"], device=images.device)
        n = boxes.shape[0]
        if labels.shape[0] != n or tuple(masks.shape) != (n, *spatial):
            raise ValueError(
                f"target {i}: boxes {tuple(boxes.shape)}, labels {tuple(labels.shape)} and masks "
                f"{tuple(masks.shape)} disagree (expected masks ({n}, *{spatial}))"
            )
        if n and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(f"target {i}: labels must be in 1..{num_classes - 1}, got {labels}")
        if n and not bool((boxes[:, dims:] > boxes[:, :dims]).all()):
            raise ValueError(f"target {i}: every box needs a positive size, got {boxes}")
        checked.append({"boxes": boxes, "labels": labels, "masks": masks})
    return checked
