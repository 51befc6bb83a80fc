"""Detections back to label maps: paste RoI masks into the image, instances to semantic labels.

Pasting inverts the RoIAlign geometry: cell ``j`` of an ``M``-cell mask row over a box
``[lo, hi)`` is centred at ``lo + (j + 0.5) * (hi - lo) / M``, so the voxel centred at
``c = i + 0.5`` reads the mask at cell coordinate ``(c - lo) / (hi - lo) * M - 0.5`` (bilinear /
trilinear, clamped to the mask). Only voxels whose centre lies inside the box can belong to the
instance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch.nn.functional import grid_sample

__all__ = ["PastedInstances", "instances_to_semantic", "paste_masks"]

MapT = TypeVar("MapT", torch.Tensor, np.ndarray)


@dataclass(frozen=True)
class PastedInstances:
    """Instance label map built from detections.

    Attributes:
        instance_map: ``[X, Y(, Z)]`` int32 on the masks' device; 0 background, instances
            ``1..K`` in descending score order.
        labels: class id of instance ``i + 1`` at position ``i``.
        scores: score of instance ``i + 1`` at position ``i``.
        detection_index: index of instance ``i + 1`` in the input detections.
    """

    instance_map: torch.Tensor
    labels: list[int]
    scores: list[float]
    detection_index: list[int]


def paste_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    spatial_shape: Sequence[int],
    *,
    threshold: float = 0.5,
) -> PastedInstances:
    """Paste per-detection mask probabilities into one instance label map.

    Args:
        masks: ``[K, M, M(, M)]`` probabilities on each box's RoI grid (eval output ``masks``).
        boxes: ``[K, 2D]`` StandardMode boxes in voxels of the image of ``spatial_shape``.
        labels: ``[K]`` class ids.
        scores: ``[K]`` detection scores.
        spatial_shape: ``(X, Y[, Z])`` of the image the boxes refer to.
        threshold: a voxel belongs to an instance where its interpolated probability is
            ``>= threshold``.

    Returns:
        :class:`PastedInstances`. Detections are pasted in descending score order and a voxel
        keeps the first (highest-scoring) instance that claims it; detections left with no voxel
        (empty after thresholding, or fully covered by better ones) get no id, so ids stay
        consecutive.

    Raises:
        ValueError: inconsistent shapes.
    """
    dims = len(spatial_shape)
    count = masks.shape[0]
    if masks.dim() != dims + 1 or boxes.shape != (count, 2 * dims) or len(labels) != count:
        raise ValueError(
            f"paste_masks: masks {tuple(masks.shape)}, boxes {tuple(boxes.shape)}, labels "
            f"{tuple(labels.shape)} do not fit {dims}D images of shape {tuple(spatial_shape)}"
        )
    instance_map = torch.zeros(tuple(spatial_shape), dtype=torch.int32, device=masks.device)
    kept: list[int] = []
    order = torch.argsort(scores.detach().float().cpu(), descending=True, stable=True).tolist()
    for det in order:
        pasted = _paste_one(masks[det], boxes[det].tolist(), spatial_shape, threshold)
        if pasted is None:
            continue
        slices, local = pasted
        region = instance_map[slices]
        claim = local & (region == 0)
        if bool(claim.any()):
            region[claim] = len(kept) + 1
            kept.append(det)
    return PastedInstances(
        instance_map=instance_map,
        labels=[int(labels[i]) for i in kept],
        scores=[float(scores[i]) for i in kept],
        detection_index=kept,
    )


def _paste_one(
    mask: torch.Tensor, box: list[float], shape: Sequence[int], threshold: float
) -> tuple[tuple[slice, ...], torch.Tensor] | None:
    """Threshold one mask resampled onto the voxels of its box: ``(slices, bool [*n])``."""
    dims = len(shape)
    slices, coords, inside = [], [], []
    for axis in range(dims):
        lo, hi = box[axis], box[axis + dims]
        start, stop = max(math.floor(lo), 0), min(math.ceil(hi), shape[axis])
        if hi <= lo or stop <= start:
            return None
        centres = torch.arange(start, stop, device=mask.device, dtype=torch.float32) + 0.5
        size = mask.shape[axis]
        cell = ((centres - lo) / (hi - lo) * size - 0.5).clamp(0.0, size - 1.0)
        coords.append(cell * (2.0 / (size - 1)) - 1.0 if size > 1 else cell)
        inside.append((centres >= lo) & (centres < hi))
        slices.append(slice(start, stop))
    lengths = [len(c) for c in coords]
    grid_axes = torch.meshgrid(*coords, indexing="ij")
    grid = torch.stack(grid_axes[::-1], dim=-1).unsqueeze(0)  # [1, *n, D], last axis first
    volume = mask.detach().float()[None, None]
    prob = grid_sample(volume, grid, mode="bilinear", align_corners=True)[0, 0]
    keep = prob >= threshold
    for axis in range(dims):
        view = [1] * dims
        view[axis] = lengths[axis]
        keep = keep & inside[axis].reshape(view)
    return tuple(slices), keep


def instances_to_semantic(instance_map: MapT, instance_labels: Sequence[int]) -> MapT:
    """Replace every instance id by its class id.

    Args:
        instance_map: ``[X, Y(, Z)]`` integer map, 0 background, ids ``1..K`` (tensor or numpy).
        instance_labels: class id of instance ``i + 1`` at position ``i``.

    Returns:
        An int64 semantic label map of the same shape, container type (numpy array or tensor)
        and device; background stays 0.

    Raises:
        ValueError: the map holds ids outside ``0..len(instance_labels)``.
    """
    lookup = [0, *(int(c) for c in instance_labels)]
    if isinstance(instance_map, np.ndarray):
        if instance_map.size and (instance_map.min() < 0 or instance_map.max() >= len(lookup)):
            raise ValueError(f"instance ids must be in 0..{len(lookup) - 1}")
        return np.asarray(lookup, dtype=np.int64)[instance_map]
    ids = instance_map.long()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(lookup)):
        raise ValueError(f"instance ids must be in 0..{len(lookup) - 1}")
    return torch.tensor(lookup, dtype=torch.long, device=ids.device)[ids]
