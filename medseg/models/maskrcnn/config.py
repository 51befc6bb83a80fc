"""Mask R-CNN options: one frozen dataclass, filled from a flat dict (workflow YAML) and checked.

:func:`resolve_config` turns ``build_maskrcnn(spatial_dims, in_channels, num_classes, **options)``
into a concrete :class:`MaskRCNNConfig`: options left out, or given as ``None``, take the
defaults below, some of which depend on ``spatial_dims``. The resolved config has no ``None`` left,
so ``dataclasses.asdict(model.config)`` can be stored in a checkpoint and passed back to
``build_maskrcnn(**...)`` to rebuild the same network (lists are accepted wherever tuples are).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from typing import Any, NoReturn

from medseg.errors import ConfigError

__all__ = ["MaskRCNNConfig", "resolve_config"]

_DEPTHS = (10, 18, 34)
_NORMS = ("group", "batch", "instance")
_POSITIVE_INTS = (
    "fpn_channels",
    "rpn_pre_nms_top_n_train",
    "rpn_pre_nms_top_n_test",
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "rpn_batch_size_per_image",
    "roi_batch_size_per_image",
    "box_roi_size",
    "mask_roi_size",
    "sampling_ratio",
    "box_head_dim",
    "mask_head_channels",
    "max_detections",
)


@dataclass(frozen=True)
class MaskRCNNConfig:
    """All Mask R-CNN settings. Sizes are in voxels of the network input, IoUs in ``[0, 1]``.

    Attributes:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        num_classes: classes including background 0; predicted labels are ``1..num_classes-1``.
        backbone_depth: MONAI ResNet depth with basic blocks: 10, 18 or 34.
        backbone_widths: channels of ResNet layers 1-4 (MONAI default is 64, 128, 256, 512).
        returned_layers: ResNet layers fed to the FPN (strides 4, 8, 16, 32 for layers 1-4); a
            max-pooled level at twice the last stride is added for the RPN only.
        fpn_channels: channels of every FPN level and of the RPN head.
        norm: normalisation in the ResNet: ``"group"`` (default, safe with batch size 1 and tiny
            3D feature maps), ``"batch"`` (MONAI's ResNet default) or ``"instance"``.
        anchor_sizes: anchor sizes per RPN level (one tuple per level, same length for every
            level). ``None`` -> ``4 * stride`` of each level: ``((16,), (32,), (64,), (128,))``
            with the default layers.
        anchor_aspect_ratios: shared by all levels. 2D: ``h / w`` ratios, default
            ``(0.5, 1.0, 2.0)``; 3D: ``(h / w, d / w)`` pairs, default ``((1.0, 1.0),)``
            (MONAI ``AnchorGenerator`` semantics).
        rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test: proposals kept per level before NMS.
        rpn_post_nms_top_n_train, rpn_post_nms_top_n_test: proposals kept per image after NMS.
        rpn_nms_threshold: IoU above which the RPN suppresses a lower-scoring proposal.
        rpn_fg_iou_threshold, rpn_bg_iou_threshold: anchors with IoU >= fg are positive, < bg
            negative, in between ignored; each ground-truth box also claims its best anchors.
        rpn_batch_size_per_image, rpn_positive_fraction: anchors sampled per image for the RPN
            losses and the largest positive share among them.
        roi_fg_iou_threshold, roi_bg_iou_threshold: proposal/ground-truth IoU for foreground and
            background RoIs (ground-truth boxes are added to the proposals in training).
        roi_batch_size_per_image, roi_positive_fraction: RoIs sampled per image for the heads.
        box_roi_size: RoIAlign output size per axis for the box head (default 7 in 2D, 5 in 3D).
        mask_roi_size: RoIAlign output size per axis for the mask head; masks come out at twice
            this (default 14 -> 28 in 2D, 7 -> 14 in 3D).
        sampling_ratio: RoIAlign sample points per bin and axis (fixed, > 0).
        roi_canonical_size, roi_canonical_level: FPN level assignment: a box of size
            ``s = (prod of its side lengths) ** (1 / spatial_dims)`` goes to the level of stride
            ``2 ** floor(canonical_level + log2(s / canonical_size))``, clamped to the levels used.
        box_head_dim: width of the two fully connected layers of the box head.
        mask_head_channels, mask_head_convs: width and number of 3x3 convs of the mask head.
        score_threshold: detections scoring below this are dropped (eval mode).
        nms_threshold: per-class NMS IoU of the final detections (eval mode).
        max_detections: detections kept per image (eval mode).
        min_box_size: proposals/detections with a side shorter than this (voxels) are dropped.
    """

    spatial_dims: int
    in_channels: int
    num_classes: int
    backbone_depth: int = 18
    backbone_widths: tuple[int, ...] = (32, 64, 128, 256)
    returned_layers: tuple[int, ...] = (1, 2, 3)
    fpn_channels: int = 64
    norm: str = "group"
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None
    anchor_aspect_ratios: tuple[Any, ...] | None = None
    rpn_pre_nms_top_n_train: int = 1000
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_train: int = 500
    rpn_post_nms_top_n_test: int = 300
    rpn_nms_threshold: float = 0.7
    rpn_fg_iou_threshold: float = 0.7
    rpn_bg_iou_threshold: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    roi_fg_iou_threshold: float = 0.5
    roi_bg_iou_threshold: float = 0.5
    roi_batch_size_per_image: int = 128
    roi_positive_fraction: float = 0.25
    box_roi_size: int | None = None
    mask_roi_size: int | None = None
    sampling_ratio: int = 2
    roi_canonical_size: float = 224.0
    roi_canonical_level: int = 4
    box_head_dim: int = 256
    mask_head_channels: int = 64
    mask_head_convs: int = 4
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100
    min_box_size: float = 0.01

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the RPN levels: one per returned layer, then the max-pooled level."""
        strides = [2 ** (layer + 1) for layer in self.returned_layers]
        return (*strides, 2 * strides[-1])

    @property
    def mask_size(self) -> int:
        """Side of the predicted masks in RoI cells (twice ``mask_roi_size``)."""
        return 2 * int(self.mask_roi_size or 0)


def resolve_config(
    spatial_dims: int, in_channels: int, num_classes: int, **options: Any
) -> MaskRCNNConfig:
    """Fill defaults and check every option.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (>= 1).
        num_classes: classes including background (>= 2).
        **options: any :class:`MaskRCNNConfig` field; ``None`` means "default".

    Returns:
        A config without ``None`` values, nested sequences as tuples.

    Raises:
        ConfigError: unknown option names or invalid values (one message naming the option).
    """
    names = {f.name for f in fields(MaskRCNNConfig)}
    for key in options:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid options: {sorted(names)}"
            raise ConfigError(f"unknown Mask R-CNN option {key!r}", hint=hint)
    given = {k: _as_tuples(v) for k, v in options.items() if v is not None}
    try:
        config = MaskRCNNConfig(spatial_dims, in_channels, num_classes, **given)
    except TypeError as err:  # pragma: no cover - all names are checked above
        raise ConfigError(str(err)) from err
    _check_core(config)
    config = _fill_defaults(config)
    _check_sizes(config)
    return config


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


def _fill_defaults(config: MaskRCNNConfig) -> MaskRCNNConfig:
    two_d = config.spatial_dims == 2
    sizes = config.anchor_sizes or tuple((float(4 * s),) for s in config.strides)
    ratios = config.anchor_aspect_ratios or ((0.5, 1.0, 2.0) if two_d else ((1.0, 1.0),))
    return replace(
        config,
        anchor_sizes=sizes,
        anchor_aspect_ratios=ratios,
        box_roi_size=config.box_roi_size or (7 if two_d else 5),
        mask_roi_size=config.mask_roi_size or (14 if two_d else 7),
    )


def _fail(key: str, message: str, value: Any) -> NoReturn:
    raise ConfigError(f"Mask R-CNN option {key}: {message}, got {value!r}")


def _check_core(config: MaskRCNNConfig) -> None:
    if config.spatial_dims not in (2, 3):
        _fail("spatial_dims", "expected 2 or 3", config.spatial_dims)
    if config.in_channels < 1:
        _fail("in_channels", "expected >= 1", config.in_channels)
    if config.num_classes < 2:
        _fail("num_classes", "expected >= 2 (background + at least one class)", config.num_classes)
    if config.backbone_depth not in _DEPTHS:
        _fail("backbone_depth", f"expected one of {_DEPTHS}", config.backbone_depth)
    if len(config.backbone_widths) != 4 or min(config.backbone_widths) < 1:
        _fail("backbone_widths", "expected 4 positive channel counts", config.backbone_widths)
    layers = config.returned_layers
    if not layers or list(layers) != sorted(set(layers)) or not set(layers) <= {1, 2, 3, 4}:
        _fail("returned_layers", "expected increasing layers from 1-4", layers)
    if config.norm not in _NORMS:
        _fail("norm", f"expected one of {_NORMS}", config.norm)
    for key in ("rpn_fg_iou_threshold", "rpn_bg_iou_threshold", "roi_fg_iou_threshold"):
        _check_fraction(key, getattr(config, key))
    for key in ("roi_bg_iou_threshold", "rpn_nms_threshold", "nms_threshold", "score_threshold"):
        _check_fraction(key, getattr(config, key))
    for key in ("rpn_positive_fraction", "roi_positive_fraction"):
        _check_fraction(key, getattr(config, key))
    if config.rpn_bg_iou_threshold > config.rpn_fg_iou_threshold:
        _fail("rpn_bg_iou_threshold", "must not exceed rpn_fg_iou_threshold", config)
    if config.roi_bg_iou_threshold > config.roi_fg_iou_threshold:
        _fail("roi_bg_iou_threshold", "must not exceed roi_fg_iou_threshold", config)


def _check_fraction(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        _fail(key, "expected a value in [0, 1]", value)


def _check_sizes(config: MaskRCNNConfig) -> None:
    for key in _POSITIVE_INTS:
        value = getattr(config, key)
        if not isinstance(value, int) or value < 1:
            _fail(key, "expected a positive integer", value)
    if not config.min_box_size >= 0:
        _fail("min_box_size", "expected a size >= 0 in voxels", config.min_box_size)
    if config.mask_head_convs < 0:
        _fail("mask_head_convs", "expected >= 0", config.mask_head_convs)
    if not (config.roi_canonical_size > 0 and math.isfinite(config.roi_canonical_size)):
        _fail("roi_canonical_size", "expected a positive size in voxels", config.roi_canonical_size)
    sizes = config.anchor_sizes or ()
    if len(sizes) != len(config.strides) or len({len(s) for s in sizes}) != 1:
        _fail(
            "anchor_sizes",
            f"expected {len(config.strides)} levels (strides {config.strides}) with the same "
            "number of sizes each",
            sizes,
        )
    ratios = config.anchor_aspect_ratios or ()
    pair = config.spatial_dims == 3
    if not ratios or any(isinstance(r, tuple) != pair for r in ratios):
        expected = "(h/w, d/w) pairs" if pair else "numbers h/w"
        _fail("anchor_aspect_ratios", f"expected a non-empty list of {expected}", ratios)
    if pair and any(len(r) != 2 for r in ratios):
        _fail("anchor_aspect_ratios", "expected (h/w, d/w) pairs in 3D", ratios)
