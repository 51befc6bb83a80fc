"""Mask R-CNN end to end on tiny CPU inputs: losses, gradients, eval outputs, config, overfit."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError
from medseg.models.maskrcnn import MaskRCNN, build_maskrcnn, targets_from_label_map

LOSS_NAMES = {"loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box", "loss_mask"}
HEADS = [
    "backbone.stem",
    "backbone.layers",
    "backbone.fpn",
    "rpn.head",
    "roi_heads.box_head",
    "roi_heads.mask_head",
]
SHAPES = {2: (64, 64), 3: (32, 32, 32)}


def _scene(dims: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An image with two bright blocks of classes 1 and 2, and its targets."""
    shape = SHAPES[dims]
    label = np.zeros(shape, dtype=np.uint8)
    label[(slice(4, 14),) * dims] = 1
    label[(slice(18, 30),) + (slice(16, 26),) * (dims - 1)] = 2
    gen = torch.Generator().manual_seed(dims)
    image = torch.from_numpy(label).float()[None, None] + 0.1 * torch.randn(
        1, 1, *shape, generator=gen
    )
    return image, targets_from_label_map(label, classes=[1, 2])


def _empty_target(dims: int) -> dict[str, torch.Tensor]:
    shape = SHAPES[dims]
    return {
        "boxes": torch.zeros(0, 2 * dims),
        "labels": torch.zeros(0, dtype=torch.long),
        "masks": torch.zeros(0, *shape, dtype=torch.uint8),
    }


def _gradients_by_head(model: MaskRCNN) -> dict[str, list[torch.Tensor | None]]:
    return {
        head: [p.grad for name, p in model.named_parameters() if name.startswith(head + ".")]
        for head in HEADS
    }


@pytest.mark.parametrize("dims", [2, 3])
def test_training_step_gives_finite_losses_and_gradients_in_every_head(
    dims: int, tiny: dict
) -> None:
    model = build_maskrcnn(dims, 1, 3, **tiny)
    image, target = _scene(dims)
    losses = model(image, [target])
    assert set(losses) == LOSS_NAMES
    for name, value in losses.items():
        assert value.dim() == 0 and value.dtype == torch.float32, name
        assert torch.isfinite(value) and value.requires_grad, name
    assert float(losses["loss_mask"].detach()) > 0
    assert float(losses["loss_classifier"].detach()) > 0
    sum(losses.values()).backward()
    # every parameter is in the graph (DDP without find_unused_parameters)
    assert all(p.grad is not None for p in model.parameters())
    for head, grads in _gradients_by_head(model).items():
        assert grads, head
        assert all(torch.isfinite(g).all() for g in grads), head
        assert sum(float(g.abs().sum()) for g in grads) > 0, head


@pytest.mark.parametrize("dims", [2, 3])
def test_training_step_with_empty_target(dims: int, tiny: dict) -> None:
    model = build_maskrcnn(dims, 1, 3, **tiny)
    image = torch.randn(1, 1, *SHAPES[dims])
    losses = model(image, [_empty_target(dims)])
    assert set(losses) == LOSS_NAMES
    for name in ("loss_rpn_box", "loss_box", "loss_mask"):
        assert float(losses[name].detach()) == 0.0 and losses[name].requires_grad, name
    assert float(losses["loss_objectness"].detach()) > 0
    assert float(losses["loss_classifier"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    mask_grads = _gradients_by_head(model)["roi_heads.mask_head"]
    assert all(float(g.abs().sum()) == 0 for g in mask_grads)  # connected, but nothing learnt


def test_training_batch_mixing_empty_and_annotated_images(tiny: dict) -> None:
    model = build_maskrcnn(2, 1, 3, **tiny)
    image, target = _scene(2)
    images = torch.cat([image, torch.randn_like(image)])
    losses = model(images, [target, _empty_target(2)])
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["loss_mask"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ddp_without_unused_parameter_search(tiny: dict, tmp_path: Path) -> None:
    """DDP (gloo, one process) with ``find_unused_parameters=False`` over lesion and empty patches.

    DDP raises on the step after one in which a parameter got no gradient.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = DistributedDataParallel(build_maskrcnn(2, 1, 3, **tiny))
        image, target = _scene(2)
        for step_target in (target, _empty_target(2), target):
            losses = model(image, [step_target])
            sum(losses.values()).backward()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("dims", [2, 3])
def test_eval_returns_documented_keys_and_shapes(dims: int, tiny: dict) -> None:
    model = build_maskrcnn(dims, 1, 4, **tiny, max_detections=7, score_threshold=0.0).eval()
    images = torch.randn(2, 1, *SHAPES[dims])
    with torch.no_grad():
        detections = model(images)
    assert isinstance(detections, list) and len(detections) == 2
    mask_size = model.config.mask_size
    assert mask_size == (28 if dims == 2 else 14)
    for det in detections:
        assert set(det) == {"boxes", "scores", "labels", "masks"}
        k = det["boxes"].shape[0]
        assert 0 < k <= 7
        assert det["boxes"].shape == (k, 2 * dims) and det["boxes"].dtype == torch.float32
        assert det["scores"].shape == (k,)
        assert det["labels"].shape == (k,) and det["labels"].dtype == torch.int64
        assert det["masks"].shape == (k, *(mask_size,) * dims)
        assert bool(((det["labels"] >= 1) & (det["labels"] <= 3)).all())
        assert bool(((det["masks"] >= 0) & (det["masks"] <= 1)).all())
        size = torch.tensor(SHAPES[dims], dtype=torch.float32).repeat(2)
        assert bool(((det["boxes"] >= 0) & (det["boxes"] <= size)).all())
        assert bool((det["boxes"][:, dims:] > det["boxes"][:, :dims]).all())


def test_no_proposal_left_gives_empty_detections_and_still_trains(tiny: dict) -> None:
    model = build_maskrcnn(2, 1, 3, **tiny, min_box_size=1000.0)  # every proposal is too small
    image, target = _scene(2)
    losses = model(image, [target])  # the ground-truth boxes are still RoIs
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        det = model(image)[0]
    assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,)
    assert det["labels"].shape == (0,) and det["masks"].shape == (0, 28, 28)


@pytest.mark.parametrize("dims", [2, 3])
def test_training_mode_runs_under_cpu_autocast(dims: int, tiny: dict) -> None:
    """bfloat16 autocast: float32 losses; finite gradients checked in 2D only.

    torch 2.13's CPU bfloat16 Conv3d backward sometimes returns non-finite weight gradients for
    2x2x2 inputs (reproducible with a bare ``nn.Conv3d``), so 3D checks the forward pass here
    and the CUDA test covers the 3D backward pass under autocast.
    """
    model = build_maskrcnn(dims, 1, 3, **tiny)
    image, target = _scene(dims)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(image, [target])
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    if dims == 2:
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_and_eval_under_fp16_autocast(tiny: dict) -> None:
    model = build_maskrcnn(3, 1, 3, **tiny).cuda()
    image, target = _scene(3)
    target = {k: v.cuda() for k, v in target.items()}
    with torch.autocast("cuda", dtype=torch.float16):
        losses = model(image.cuda(), [target])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        det = model(image.cuda())[0]
    assert det["boxes"].is_cuda and det["boxes"].dtype == torch.float32


def test_forward_rejects_bad_input(tiny: dict) -> None:
    model = build_maskrcnn(2, 1, 3, **tiny)
    image, target = _scene(2)
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.zeros(1, 1, 64, 48), [target])
    with pytest.raises(ValueError, match="spatial axes"):
        model(torch.zeros(1, 1, 32, 32, 32), [target])
    with pytest.raises(ValueError, match="one target per image"):
        model(image)
    with pytest.raises(ValueError, match=r"labels must be in 1\.\.2"):
        model(image, [{**target, "labels": torch.tensor([1, 3])}])
    with pytest.raises(ValueError, match="disagree"):
        model(image, [{**target, "masks": target["masks"][:1]}])


def test_build_config_defaults_errors_and_round_trip() -> None:
    model = build_maskrcnn(3, 2, 3, backbone_depth=10, anchor_sizes=[[8], [16], [32], [64]])
    config = model.config
    assert (config.box_roi_size, config.mask_roi_size, config.mask_size) == (5, 7, 14)
    assert config.anchor_aspect_ratios == ((1.0, 1.0),)
    assert config.anchor_sizes == ((8,), (16,), (32,), (64,))
    assert build_maskrcnn(2, 1, 2).config.anchor_sizes == ((16.0,), (32.0,), (64.0,), (128.0,))
    rebuilt = build_maskrcnn(**dataclasses.asdict(config))
    assert rebuilt.config == config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ConfigError, match="anchor_size") as info:
        build_maskrcnn(2, 1, 2, anchor_size=[[16]])
    assert "did you mean 'anchor_sizes'" in info.value.describe()
    with pytest.raises(ConfigError, match="anchor_sizes"):
        build_maskrcnn(2, 1, 2, anchor_sizes=[[16], [32]])
    with pytest.raises(ConfigError, match="anchor_aspect_ratios"):
        build_maskrcnn(3, 1, 2, anchor_aspect_ratios=[0.5, 1.0])
    with pytest.raises(ConfigError, match="rpn_bg_iou_threshold"):
        build_maskrcnn(2, 1, 2, rpn_bg_iou_threshold=0.8)
    with pytest.raises(ConfigError, match="num_classes"):
        build_maskrcnn(2, 1, 1)


def test_overfits_bright_squares() -> None:
    """~60 Adam steps on one 64x64 image: the loss falls and the squares are found."""
    torch.manual_seed(0)
    label = np.zeros((64, 64), dtype=np.uint8)
    label[8:20, 10:22] = 1
    label[36:52, 30:46] = 1
    label[12:22, 44:56] = 1
    gen = torch.Generator().manual_seed(1)
    image = torch.from_numpy(label).float()[None, None] + 0.1 * torch.randn(
        1, 1, 64, 64, generator=gen
    )
    target = targets_from_label_map(label, classes=[1])
    model = build_maskrcnn(
        2, 1, 2, backbone_depth=10, backbone_widths=(8, 16, 32, 64), fpn_channels=16,
        box_head_dim=64, mask_head_channels=16, mask_head_convs=2, mask_roi_size=7,
        rpn_post_nms_top_n_train=100, roi_batch_size_per_image=64,
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    history, start = [], time.perf_counter()
    for _ in range(60):
        total = sum(model(image, [target]).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(float(total.detach()))
    assert time.perf_counter() - start < 60
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.35 * first, (first, last)
    model.eval()
    with torch.no_grad():
        det = model(image)[0]
    confident = det["boxes"][det["scores"] > 0.5]
    assert len(confident) == 3
    from monai.data.box_utils import box_iou

    assert bool((box_iou(target["boxes"], confident).max(dim=1).values > 0.7).all())
