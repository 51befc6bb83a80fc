"""RoI heads: proposal sampling, box and mask losses, and detection post-processing.

Training (:meth:`RoIHeads.losses`): the ground-truth boxes are added to each image's proposals,
every proposal is matched to ground truth at ``roi_fg_iou_threshold`` / ``roi_bg_iou_threshold``
and ``roi_batch_size_per_image`` RoIs are sampled (at most ``roi_positive_fraction`` positive).
The box head gets every sampled RoI; the mask head only the positives, whose targets are the
ground-truth masks of the matched instance RoI-aligned to the RoI (soft targets in ``[0, 1]``, as
torchvision does). Box deltas use MONAI's ``BoxCoder`` with weights ``(10, .., 5, ..)``.

Eval (:meth:`RoIHeads.detect`): class-specific boxes are decoded and clipped, background and scores
below ``score_threshold`` dropped, per-class NMS (MONAI's semantics,
:mod:`~medseg.models.maskrcnn.nms`) keeps at most ``max_detections`` boxes, and the mask head
predicts the mask of each detection's label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from monai.apps.detection.utils.box_coder import BoxCoder
from torch import nn

from medseg.models.maskrcnn.config import MaskRCNNConfig
from medseg.models.maskrcnn.heads import BoxHead, MaskHead
from medseg.models.maskrcnn.losses import (
    box_regression_loss,
    classification_loss,
    mask_loss,
)
from medseg.models.maskrcnn.matcher import BETWEEN, match_boxes, sample_balanced
from medseg.models.maskrcnn.nms import batched_nms
from medseg.models.maskrcnn.roi_align import MultiScaleRoIAlign, roi_align
from medseg.models.maskrcnn.rpn import clip_and_filter

__all__ = ["RoIHeads"]


class _Sample(NamedTuple):
    """One image's sampled RoIs, positives first."""

    rois: torch.Tensor  # [S, 2D]
    labels: torch.Tensor  # [S] class, 0 = background
    matched: torch.Tensor  # [num_pos] ground-truth index of each positive
    num_pos: int
    box_targets: torch.Tensor  # [num_pos, 2D] encoded ground-truth boxes


class RoIHeads(nn.Module):
    """Box and mask branches on multi-scale RoIAlign features.

    Args:
        config: resolved Mask R-CNN config.
        strides: strides of the FPN levels the RoIs are pooled from (finest first).
    """

    def __init__(self, config: MaskRCNNConfig, strides: Sequence[int]) -> None:
        super().__init__()
        dims, channels = config.spatial_dims, config.fpn_channels
        box_size, mask_size = int(config.box_roi_size or 0), int(config.mask_roi_size or 0)
        self.config = config
        self.box_pool, self.mask_pool = (
            MultiScaleRoIAlign(
                strides,
                size,
                sampling_ratio=config.sampling_ratio,
                canonical_size=config.roi_canonical_size,
                canonical_level=config.roi_canonical_level,
            )
            for size in (box_size, mask_size)
        )
        self.box_head = BoxHead(dims, channels, box_size, config.box_head_dim, config.num_classes)
        self.mask_head = MaskHead(
            dims, channels, config.mask_head_channels, config.mask_head_convs, config.num_classes
        )
        self.box_coder = BoxCoder(weights=(10.0,) * dims + (5.0,) * dims)

    def losses(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[torch.Tensor],
        targets: Sequence[Mapping[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """Sample RoIs and compute ``loss_classifier``, ``loss_box`` and ``loss_mask``.

        Args:
            features: ``[B, C, *s_l]`` per pooled level.
            proposals: per image ``[P_b, 2D]`` detached proposals in input voxels.
            targets: per image ``boxes [N, 2D]``, ``labels [N]``, ``masks [N, *spatial]``.
        """
        samples = [self._sample(p, t) for p, t in zip(proposals, targets, strict=True)]
        rois = [s.rois for s in samples]
        labels = torch.cat([s.labels for s in samples])
        class_logits, deltas = self.box_head(self.box_pool(features, rois))
        positive = (labels > 0).nonzero().squeeze(1)
        dims = self.config.spatial_dims
        pos_deltas = deltas.reshape(deltas.shape[0], -1, 2 * dims)[positive, labels[positive]]
        pos_targets = torch.cat([s.box_targets for s in samples])
        pos_rois = [s.rois[: s.num_pos] for s in samples]
        mask_logits = self.mask_head(self.mask_pool(features, pos_rois))
        mask_targets = torch.cat([self._mask_targets(s, t) for s, t in zip(samples, targets)])
        return {
            "loss_classifier": classification_loss(class_logits, labels),
            "loss_box": box_regression_loss(pos_deltas, pos_targets, normalizer=labels.numel()),
            "loss_mask": mask_loss(mask_logits, labels[positive], mask_targets),
        }

    def _sample(self, proposals: torch.Tensor, target: Mapping[str, torch.Tensor]) -> _Sample:
        """Sample one image's RoIs, positives first."""
        cfg = self.config
        gt_boxes, gt_labels = target["boxes"], target["labels"]
        boxes = torch.cat([proposals, gt_boxes.to(proposals.dtype)])
        matches = match_boxes(
            gt_boxes,
            boxes,
            high=cfg.roi_fg_iou_threshold,
            low=cfg.roi_bg_iou_threshold,
            allow_low_quality=False,
        )
        labels = torch.zeros_like(matches)
        if gt_boxes.shape[0] > 0:
            labels = torch.where(matches >= 0, gt_labels[matches.clamp(min=0)], labels)
        labels[matches == BETWEEN] = -1
        pos, neg = sample_balanced(
            labels,
            batch_size=cfg.roi_batch_size_per_image,
            positive_fraction=cfg.roi_positive_fraction,
        )
        sampled = torch.cat([pos, neg])
        matched = matches[pos]
        return _Sample(
            rois=boxes[sampled],
            labels=labels[sampled],
            matched=matched,
            num_pos=pos.numel(),
            box_targets=self.box_coder.encode_single(gt_boxes[matched], boxes[pos]),
        )

    def _mask_targets(self, sample: _Sample, target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """RoI-aligned ground-truth masks ``[num_pos, *M]`` of one image's positive RoIs."""
        num_pos, size = sample.num_pos, self.config.mask_size
        rois, matched = sample.rois[:num_pos], sample.matched
        masks = target["masks"]
        if num_pos == 0:
            return masks.new_zeros((0, *(size,) * self.config.spatial_dims), dtype=torch.float32)
        used, index = torch.unique(matched, return_inverse=True)
        gt = masks[used].unsqueeze(1).float()  # [U, 1, *spatial]
        aligned = roi_align(
            gt,
            rois,
            index,
            output_size=size,
            spatial_scale=1.0,
            sampling_ratio=self.config.sampling_ratio,
        )
        return aligned[:, 0]

    def detect(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[torch.Tensor],
        image_shape: Sequence[int],
    ) -> list[dict[str, torch.Tensor]]:
        """Per image ``boxes [K, 2D]``, ``scores [K]``, ``labels [K]`` and ``masks [K, *M]``."""
        class_logits, deltas = self.box_head(self.box_pool(features, proposals))
        counts = [p.shape[0] for p in proposals]
        results = [
            self._postprocess(logits, delta, props, image_shape)
            for logits, delta, props in zip(
                class_logits.split(counts), deltas.split(counts), proposals, strict=True
            )
        ]
        mask_logits = self.mask_head(self.mask_pool(features, [r["boxes"] for r in results]))
        start = 0
        for result in results:
            count = result["boxes"].shape[0]
            index = torch.arange(count, device=mask_logits.device)
            chosen = mask_logits[start : start + count][index, result["labels"]]
            result["masks"] = chosen.float().sigmoid()
            start += count
        return results

    def _postprocess(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        proposals: torch.Tensor,
        image_shape: Sequence[int],
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        dims, num_classes = cfg.spatial_dims, cfg.num_classes
        boxes = self.box_coder.decode_single(deltas.detach().float(), proposals)
        boxes = boxes.reshape(-1, num_classes, 2 * dims)[:, 1:].reshape(-1, 2 * dims)
        scores = class_logits.detach().float().softmax(dim=-1)[:, 1:].reshape(-1)
        labels = torch.arange(1, num_classes, device=boxes.device).repeat(proposals.shape[0])
        confident = scores > cfg.score_threshold
        boxes, keep = clip_and_filter(boxes[confident], image_shape, cfg.min_box_size)
        scores, labels = scores[confident][keep], labels[confident][keep]
        nms = batched_nms(
            boxes, scores, labels, cfg.nms_threshold, max_proposals=cfg.max_detections
        )
        keep = torch.as_tensor(nms)[: cfg.max_detections]
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
