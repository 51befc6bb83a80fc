"""RoIAlign for 2D and 3D on ``torch.nn.functional.grid_sample``, and FPN level assignment.

Semantics are those of Mask R-CNN's RoIAlign with ``aligned=True`` (torchvision / Detectron2):

* Frames: boxes are StandardMode (min corners, then max corners) in voxels of the network input,
  voxel ``i`` spanning ``[i, i + 1)``. On a feature map of stride ``s`` (``spatial_scale = 1/s``)
  the box maps to ``box * spatial_scale - 0.5`` in feature *index* coordinates (index ``j`` is the
  centre of feature cell ``j``): that is the half-pixel offset of ``aligned=True``.
* Each of the ``P`` bins per axis is sampled at ``sampling_ratio`` evenly spaced points per axis
  (bin centres of a regular sub-grid) and the samples are averaged.
* A sample is interpolated linearly along every axis (bilinear / trilinear). A sample more than
  one cell outside the map (coordinate ``< -1`` or ``> size`` on some axis) counts as 0; otherwise
  its coordinate is clamped to ``[0, size - 1]`` (border replication).

``grid_sample`` is called with ``align_corners=True``, so normalised ``-1`` / ``+1`` are exactly
the centres of the first / last cells and index coordinate ``c`` maps to ``2 c / (size - 1) - 1``.
The zero/clamp rule above is applied explicitly (clamped coordinates plus a validity mask), so
the result does not depend on ``grid_sample``'s padding modes. Sampling runs in float32 (or
float64 for float64 input) with autocast disabled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.functional import grid_sample

__all__ = ["MultiScaleRoIAlign", "assign_levels", "roi_align"]


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    *,
    output_size: int | Sequence[int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool a fixed-size grid of features from each box.

    Args:
        features: ``[B, C, *S]`` with ``D = len(S)`` in {2, 3}.
        boxes: ``[K, 2D]`` StandardMode boxes in input voxels.
        batch_index: ``[K]`` image of each box in ``features``.
        output_size: bins per axis ``P`` (int or one per axis).
        spatial_scale: feature cells per input voxel (``1 / stride``).
        sampling_ratio: sample points per bin and axis (> 0).
        aligned: apply the half-cell offset; ``False`` reproduces the original RoIAlign (no
            offset, box sizes clamped to at least one cell).

    Returns:
        ``[K, C, *P]`` in float32 (float64 for float64 features).
    """
    dims = features.dim() - 2
    size = (output_size,) * dims if isinstance(output_size, int) else tuple(output_size)
    if dims not in (2, 3) or boxes.shape[-1] != 2 * dims or len(size) != dims:
        raise ValueError(
            f"roi_align: features {tuple(features.shape)}, boxes {tuple(boxes.shape)} and "
            f"output_size {size} do not describe 2D or 3D RoIs"
        )
    if sampling_ratio < 1:
        raise ValueError(f"roi_align: sampling_ratio must be >= 1, got {sampling_ratio}")
    dtype = torch.promote_types(features.dtype, torch.float32)
    out = features.new_zeros((boxes.shape[0], features.shape[1], *size), dtype=dtype)
    if boxes.shape[0] == 0:
        return out
    with torch.autocast(device_type=features.device.type, enabled=False):
        grid, valid = _sampling_grid(
            boxes.to(dtype), features.shape[2:], size, spatial_scale, sampling_ratio, aligned
        )
        for b in range(features.shape[0]):
            idx = (batch_index == b).nonzero().squeeze(1)
            if idx.numel() > 0:
                feature = features[b : b + 1].to(dtype)
                out[idx] = _sample_one_image(feature, grid[idx], valid[idx], size)
    return out


def _sampling_grid(
    boxes: torch.Tensor,
    spatial: Sequence[int],
    size: tuple[int, ...],
    scale: float,
    ratio: int,
    aligned: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised grid ``[K, *(P*r), D]`` (last axis reversed for grid_sample) and validity."""
    dims = len(size)
    offset = 0.5 if aligned else 0.0
    coords, valids = [], []
    for axis in range(dims):
        start = boxes[:, axis] * scale - offset
        extent = (boxes[:, axis + dims] - boxes[:, axis]) * scale
        if not aligned:
            extent = extent.clamp(min=1.0)
        steps = torch.arange(size[axis] * ratio, device=boxes.device, dtype=boxes.dtype)
        pos = start[:, None] + extent[:, None] / size[axis] * (steps + 0.5) / ratio  # [K, P*r]
        valids.append((pos >= -1.0) & (pos <= spatial[axis]))
        clamped = pos.clamp(0.0, spatial[axis] - 1.0)
        norm = clamped * (2.0 / (spatial[axis] - 1)) - 1.0 if spatial[axis] > 1 else clamped
        coords.append(norm)
    grid_axes, valid = [], None
    for axis in range(dims):
        view = [boxes.shape[0]] + [1] * dims
        view[axis + 1] = size[axis] * ratio
        grid_axes.append(coords[axis].reshape(view).expand(-1, *[p * ratio for p in size]))
        mask = valids[axis].reshape(view)
        valid = mask if valid is None else valid & mask
    grid = torch.stack(grid_axes[::-1], dim=-1)  # grid_sample wants (last axis, ..., first axis)
    return grid, valid.expand_as(grid[..., 0])  # type: ignore[union-attr]


def _sample_one_image(
    feature: torch.Tensor, grid: torch.Tensor, valid: torch.Tensor, size: tuple[int, ...]
) -> torch.Tensor:
    """Sample ``feature [1, C, *S]`` at ``grid [K, *(P*r), D]``; average each bin's samples."""
    k, dims = grid.shape[0], grid.shape[-1]
    points = grid.reshape(1, -1, *([1] * (dims - 1)), dims)  # [1, K*n, 1(, 1), D]
    sampled = grid_sample(feature, points, mode="bilinear", align_corners=True)
    sampled = sampled.reshape(feature.shape[1], k, *grid.shape[1:-1]).transpose(0, 1)
    sampled = sampled * valid[:, None].to(sampled.dtype)  # [K, C, *(P*r)]
    ratio = grid.shape[1] // size[0]
    split = [k, feature.shape[1]]
    for bins in size:
        split += [bins, ratio]
    return sampled.reshape(split).mean(dim=tuple(3 + 2 * axis for axis in range(dims)))


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign over the FPN levels, each box from the level matching its size.

    Args:
        strides: stride of every pooled level (powers of two, finest first).
        output_size: bins per axis.
        sampling_ratio: sample points per bin and axis.
        canonical_size: box size (voxels) that maps to ``canonical_level``.
        canonical_level: ``log2`` of the stride for boxes of ``canonical_size``.
    """

    def __init__(
        self,
        strides: Sequence[int],
        output_size: int,
        *,
        sampling_ratio: int = 2,
        canonical_size: float = 224.0,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.canonical_size = canonical_size
        self.canonical_level = canonical_level

    def forward(
        self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Pool every box of every image.

        Args:
            features: ``[B, C, *S_l]`` per level, same order as ``strides``.
            boxes: per image ``[K_b, 2D]`` boxes in input voxels.

        Returns:
            ``[sum K_b, C, *P]`` in the order of the images, then of the boxes.
        """
        all_boxes = torch.cat(list(boxes), dim=0)
        batch_index = torch.cat(
            [
                torch.full((len(b),), i, dtype=torch.long, device=b.device)
                for i, b in enumerate(boxes)
            ]
        )
        dims = features[0].dim() - 2
        dtype = torch.promote_types(features[0].dtype, torch.float32)
        out = features[0].new_zeros(
            (all_boxes.shape[0], features[0].shape[1], *(self.output_size,) * dims), dtype=dtype
        )
        levels = assign_levels(all_boxes, self.strides, self.canonical_size, self.canonical_level)
        for level, (feature, stride) in enumerate(zip(features, self.strides, strict=True)):
            idx = (levels == level).nonzero().squeeze(1)
            if idx.numel() > 0:
                out[idx] = roi_align(
                    feature,
                    all_boxes[idx],
                    batch_index[idx],
                    output_size=self.output_size,
                    spatial_scale=1.0 / stride,
                    sampling_ratio=self.sampling_ratio,
                )
        return out


def assign_levels(
    boxes: torch.Tensor,
    strides: Sequence[int],
    canonical_size: float = 224.0,
    canonical_level: int = 4,
) -> torch.Tensor:
    """FPN level of each box (Lin et al. 2017, eq. 1, generalised to N-D).

    The box size is the geometric mean of its side lengths (``sqrt(area)`` in 2D,
    ``volume ** (1/3)`` in 3D); the level is ``floor(canonical_level + log2(size /
    canonical_size))`` clamped to the available strides.

    Args:
        boxes: ``[K, 2D]`` StandardMode boxes in input voxels.
        strides: strides of the levels, powers of two, finest first.
        canonical_size: box size that maps to ``canonical_level``.
        canonical_level: ``log2(stride)`` for boxes of ``canonical_size``.

    Returns:
        ``[K]`` long index into ``strides``.
    """
    dims = boxes.shape[-1] // 2
    sides = (boxes[:, dims:] - boxes[:, :dims]).float().clamp(min=1e-6)
    size = torch.exp(torch.log(sides).mean(dim=1))
    k = torch.floor(canonical_level + torch.log2(size / canonical_size) + 1e-6)
    logs = [math.log2(s) for s in strides]
    k = k.clamp(logs[0], logs[-1])
    log_strides = torch.tensor(logs, dtype=k.dtype, device=k.device)
    return (log_strides[None, :] <= k[:, None] + 1e-3).sum(dim=1) - 1
