"""Anchors per FPN level from MONAI's ``AnchorGenerator``.

Anchors are boxes in MONAI ``StandardMode`` (2D ``xyxy``, 3D ``xyzxyz``: min corners then max
corners) in voxel units of the network input, where voxel ``i`` spans ``[i, i + 1)``. On a level
of stride ``s`` the anchor centres sit at ``s * k + s // 2`` for every feature-map index ``k``
(matrix ``"ij"`` indexing, so axis order is that of the tensor). Within a level, anchors are ordered
location-major (feature-map locations in C order), then by anchor shape, which is the order of
:func:`flatten_level_outputs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from monai.apps.detection.utils.anchor_utils import AnchorGenerator

from medseg.models.maskrcnn.config import MaskRCNNConfig

__all__ = ["anchors_per_level", "build_anchor_generator", "flatten_level_outputs"]


def build_anchor_generator(config: MaskRCNNConfig) -> AnchorGenerator:
    """MONAI ``AnchorGenerator`` with ``config.anchor_sizes`` and the shared aspect ratios."""
    sizes: Any = config.anchor_sizes or ()  # MONAI annotates int sizes; floats work the same
    ratios = config.anchor_aspect_ratios or ()
    return AnchorGenerator(sizes=sizes, aspect_ratios=(ratios,) * len(sizes), indexing="ij")


def anchors_per_level(
    generator: AnchorGenerator,
    image_shape: Sequence[int],
    feature_shapes: Sequence[Sequence[int]],
    device: torch.device,
) -> list[torch.Tensor]:
    """Anchors of every level, float32 on ``device``.

    Args:
        generator: from :func:`build_anchor_generator`.
        image_shape: spatial shape of the network input ``(X, Y[, Z])``.
        feature_shapes: spatial shape of every level, finest first.
        device: where the anchors go.

    Returns:
        One ``[A * prod(feature_shape), 2 * D]`` tensor per level (``A`` anchors per location).
    """
    # MONAI reads only shapes, dtype and device from these: zero-channel stand-ins cost nothing
    # and keep the anchors in float32 under autocast
    image = torch.empty((1, 0, *image_shape), dtype=torch.float32, device=device)
    maps = [torch.empty((1, 0, *s), dtype=torch.float32, device=device) for s in feature_shapes]
    anchors = generator(image, maps)[0]
    counts = [
        n * math.prod(s)
        for n, s in zip(generator.num_anchors_per_location(), feature_shapes, strict=True)
    ]
    return list(anchors.split(counts))


def flatten_level_outputs(
    logits: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten per-level head outputs into the anchor order of :func:`anchors_per_level`.

    Args:
        logits: per level ``[B, A, *s]`` objectness logits.
        deltas: per level ``[B, A * 2D, *s]`` box deltas.

    Returns:
        ``([B, N], [B, N, 2D])`` with ``N`` the total number of anchors over all levels.
    """
    flat_logits, flat_deltas = [], []
    for logit, delta in zip(logits, deltas, strict=True):
        batch, num_anchors = logit.shape[:2]
        dims = logit.dim() - 2
        order = (0, *range(2, 2 + dims), 1)  # [B, *s, A]
        flat_logits.append(logit.permute(order).reshape(batch, -1))
        delta = delta.reshape(batch, num_anchors, 2 * dims, *delta.shape[2:])
        order = (0, *range(3, 3 + dims), 1, 2)  # [B, *s, A, 2D]
        flat_deltas.append(delta.permute(order).reshape(batch, -1, 2 * dims))
    return torch.cat(flat_logits, dim=1), torch.cat(flat_deltas, dim=1)
