"""Shared settings for the Mask R-CNN tests: a network small enough for a CPU step in ~0.1 s."""

from __future__ import annotations

from typing import Any

import pytest

TINY: dict[str, Any] = {
    "backbone_depth": 10,
    "backbone_widths": (8, 16, 32, 64),
    "fpn_channels": 16,
    "box_head_dim": 32,
    "mask_head_channels": 16,
    "mask_head_convs": 1,
    "rpn_post_nms_top_n_train": 100,
    "rpn_post_nms_top_n_test": 50,
    "roi_batch_size_per_image": 64,
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    """Options for :func:`build_maskrcnn` that keep the network tiny."""
    return dict(TINY)
