"""Region proposal network: anchors, objectness, proposal selection and RPN losses.

Proposal selection per image (no gradient): the ``pre_nms_top_n`` highest-scoring anchors of every
level are decoded (MONAI ``BoxCoder``, unit weights), clipped to the image, boxes with a side
shorter than ``min_box_size`` are dropped, NMS runs per level (MONAI's semantics,
:mod:`~medseg.models.maskrcnn.nms`, IoU ``rpn_nms_threshold``) and the best ``post_nms_top_n``
proposals over all levels are kept.
Training uses the ``*_train`` counts, eval mode the ``*_test`` counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.apps.detection.utils.box_coder import BoxCoder
from monai.data.box_utils import clip_boxes_to_image
from torch import nn

from medseg.models.maskrcnn.anchors import (
    anchors_per_level,
    build_anchor_generator,
    flatten_level_outputs,
)
from medseg.models.maskrcnn.config import MaskRCNNConfig
from medseg.models.maskrcnn.heads import RPNHead
from medseg.models.maskrcnn.losses import box_regression_loss, objectness_loss
from medseg.models.maskrcnn.matcher import BETWEEN, match_boxes, sample_balanced
from medseg.models.maskrcnn.nms import batched_nms

__all__ = ["RegionProposalNetwork", "clip_and_filter"]


class RegionProposalNetwork(nn.Module):
    """RPN over all FPN levels (shared head).

    Args:
        config: resolved Mask R-CNN config.
    """

    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.anchor_generator = build_anchor_generator(config)
        num_anchors = self.anchor_generator.num_anchors_per_location()[0]
        self.head = RPNHead(config.spatial_dims, config.fpn_channels, num_anchors)
        self.box_coder = BoxCoder(weights=(1.0,) * (2 * config.spatial_dims))

    def forward(
        self,
        features: Sequence[torch.Tensor],
        image_shape: Sequence[int],
        targets: Sequence[Mapping[str, torch.Tensor]] | None = None,
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Propose boxes and, in training, compute the RPN losses.

        Args:
            features: ``[B, C, *s_l]`` per level, finest first.
            image_shape: spatial shape of the network input.
            targets: per image ``{"boxes": [N, 2D], ...}``; required in training mode.

        Returns:
            ``(proposals, losses)``: per image ``[P_b, 2D]`` float32 proposals (detached) in
            input voxels, and ``{"loss_objectness", "loss_rpn_box"}`` (empty in eval mode).
        """
        logits, deltas = self.head(features)
        shapes = [f.shape[2:] for f in features]
        anchors = anchors_per_level(self.anchor_generator, image_shape, shapes, features[0].device)
        objectness, box_deltas = flatten_level_outputs(logits, deltas)
        proposals = self._propose(objectness.detach(), box_deltas.detach(), anchors, image_shape)
        if not self.training:
            return proposals, {}
        if targets is None:
            raise ValueError("RegionProposalNetwork needs targets in training mode")
        return proposals, self._losses(objectness, box_deltas, torch.cat(anchors), targets)

    def _propose(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        anchors: Sequence[torch.Tensor],
        image_shape: Sequence[int],
    ) -> list[torch.Tensor]:
        cfg = self.config
        pre = cfg.rpn_pre_nms_top_n_train if self.training else cfg.rpn_pre_nms_top_n_test
        post = cfg.rpn_post_nms_top_n_train if self.training else cfg.rpn_post_nms_top_n_test
        top, levels, offset = [], [], 0
        for level, level_anchors in enumerate(anchors):
            count = level_anchors.shape[0]
            k = min(pre, count)
            top.append(objectness[:, offset : offset + count].topk(k, dim=1).indices + offset)
            levels.append(torch.full((k,), level, dtype=torch.long, device=objectness.device))
            offset += count
        top_idx, level_idx, all_anchors = (
            torch.cat(top, 1),
            torch.cat(levels),
            torch.cat(list(anchors)),
        )
        proposals = []
        for b in range(objectness.shape[0]):
            idx = top_idx[b]
            boxes = self.box_coder.decode_single(deltas[b, idx].float(), all_anchors[idx])
            scores = objectness[b, idx].float().sigmoid()
            boxes, keep = clip_and_filter(boxes, image_shape, cfg.min_box_size)
            keep_nms = batched_nms(
                boxes, scores[keep], level_idx[keep], cfg.rpn_nms_threshold, max_proposals=post
            )
            proposals.append(boxes[torch.as_tensor(keep_nms)])
        return proposals

    def _losses(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        anchors: torch.Tensor,
        targets: Sequence[Mapping[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        logits, labels, pos_deltas, pos_targets = [], [], [], []
        for b, target in enumerate(targets):
            gt = target["boxes"]
            matches = match_boxes(
                gt,
                anchors,
                high=cfg.rpn_fg_iou_threshold,
                low=cfg.rpn_bg_iou_threshold,
                allow_low_quality=True,
            )
            anchor_labels = (matches >= 0).long()
            anchor_labels[matches == BETWEEN] = -1
            pos, neg = sample_balanced(
                anchor_labels,
                batch_size=cfg.rpn_batch_size_per_image,
                positive_fraction=cfg.rpn_positive_fraction,
            )
            sampled = torch.cat([pos, neg])
            logits.append(objectness[b, sampled])
            labels.append(anchor_labels[sampled])
            pos_deltas.append(deltas[b, pos])
            pos_targets.append(self.box_coder.encode_single(gt[matches[pos]], anchors[pos]))
        num_sampled = sum(x.numel() for x in labels)
        return {
            "loss_objectness": objectness_loss(torch.cat(logits), torch.cat(labels)),
            "loss_rpn_box": box_regression_loss(
                torch.cat(pos_deltas), torch.cat(pos_targets), normalizer=num_sampled
            ),
        }


def clip_and_filter(
    boxes: torch.Tensor, image_shape: Sequence[int], min_size: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip boxes to the image (MONAI ``clip_boxes_to_image``) and drop too-small ones.

    Args:
        boxes: ``[N, 2D]`` StandardMode boxes in input voxels.
        image_shape: spatial shape; boxes are clipped to ``[0, shape]`` per axis.
        min_size: smallest side length (voxels) kept.

    Returns:
        ``(kept_boxes [M, 2D] float32, keep [N] bool)``.
    """
    clipped = torch.as_tensor(clip_boxes_to_image(boxes, list(image_shape), remove_empty=False)[0])
    dims = boxes.shape[1] // 2
    keep = ((clipped[:, dims:] - clipped[:, :dims]) >= min_size).all(dim=1)
    return clipped[keep], keep
