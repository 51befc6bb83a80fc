"""Anchors cover every feature map location, and head outputs flatten in the same order."""

from __future__ import annotations

import pytest
import torch

from medseg.models.maskrcnn.anchors import (
    anchors_per_level,
    build_anchor_generator,
    flatten_level_outputs,
)
from medseg.models.maskrcnn.config import resolve_config

CASES = [
    (2, (64, 96), {}),  # defaults: 3 aspect ratios per location
    (3, (64, 32, 96), {}),  # default: one cube per location
    (3, (32, 64, 32), {"anchor_aspect_ratios": [[1.0, 1.0], [2.0, 0.5]]}),
]


def _centres(anchors: torch.Tensor, dims: int) -> torch.Tensor:
    return (anchors[:, :dims] + anchors[:, dims:]) / 2


@pytest.mark.parametrize(("dims", "image", "options"), CASES)
def test_anchors_cover_every_location(dims: int, image: tuple[int, ...], options: dict) -> None:
    config = resolve_config(dims, 1, 2, **options)
    generator = build_anchor_generator(config)
    per_location = generator.num_anchors_per_location()[0]
    assert per_location == len(config.anchor_aspect_ratios)
    shapes = [tuple(n // s for n in image) for s in config.strides]
    levels = anchors_per_level(generator, image, shapes, torch.device("cpu"))
    assert len(levels) == len(config.strides)
    for anchors, shape, stride, (size,) in zip(levels, shapes, config.strides, config.anchor_sizes):
        count = per_location
        for n in shape:
            count *= n
        assert anchors.shape == (count, 2 * dims)
        assert anchors.dtype == torch.float32
        centres = _centres(anchors, dims)
        for axis in range(dims):
            expected = torch.arange(shape[axis]) * stride + stride // 2
            assert torch.equal(torch.unique(centres[:, axis]), expected.float())
            # the centres span the image: half a stride from each border
            assert centres[:, axis].min() == stride // 2
            assert centres[:, axis].max() == image[axis] - stride // 2
        volume = (anchors[:, dims:] - anchors[:, :dims]).prod(dim=1)
        torch.testing.assert_close(volume, torch.full_like(volume, size**dims), rtol=0.1, atol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_flattened_outputs_follow_anchor_order(dims: int) -> None:
    config = resolve_config(dims, 1, 2)
    generator = build_anchor_generator(config)
    per_location = generator.num_anchors_per_location()[0]
    image = (64,) * dims
    shapes = [tuple(n // s for n in image) for s in config.strides]
    anchors = torch.cat(anchors_per_level(generator, image, shapes, torch.device("cpu")))
    logits = [torch.zeros(2, per_location, *s) for s in shapes]
    deltas = [torch.zeros(2, per_location * 2 * dims, *s) for s in shapes]
    level, anchor_index, location = 1, per_location - 1, (3, 1, 2)[:dims]
    logits[level][(1, anchor_index, *location)] = 5.0
    deltas[level][(1, anchor_index * 2 * dims + dims, *location)] = 7.0  # first size delta
    flat_logits, flat_deltas = flatten_level_outputs(logits, deltas)
    assert flat_logits.shape == (2, anchors.shape[0])
    assert flat_deltas.shape == (2, anchors.shape[0], 2 * dims)
    hit = int(flat_logits[1].argmax())
    assert flat_deltas[1, hit, dims] == 7.0
    assert float(flat_logits[0].abs().sum()) == 0.0
    stride = config.strides[level]
    expected_centre = torch.tensor([c * stride + stride // 2 for c in location], dtype=torch.float)
    torch.testing.assert_close(_centres(anchors[hit : hit + 1], dims)[0], expected_centre)
    cell = generator.cell_anchors[level][anchor_index]
    sides = anchors[hit, dims:] - anchors[hit, :dims]
    torch.testing.assert_close(sides, cell[dims:] - cell[:dims])
