"""Pure-torch Mask R-CNN for 2D and 3D images, on MONAI detection blocks (no torchvision).

Build with :func:`build_maskrcnn`; train with ``model(images, targets)`` (a dict of losses) and
predict in eval mode with ``model(images)`` (one dict of ``boxes``, ``scores``, ``labels`` and
``masks`` per image). :func:`targets_from_label_map` / :func:`targets_from_instance_map` make
training targets from label maps; :func:`paste_masks` and :func:`instances_to_semantic` turn
detections back into label maps.

Frames: images ``[B, C, X, Y(, Z)]``; boxes MONAI ``StandardMode`` (2D ``xyxy``, 3D ``xyzxyz``) in
input voxels with voxel ``i`` spanning ``[i, i + 1)``.

Example:
    >>> import torch
    >>> model = build_maskrcnn(2, 1, 2, backbone_depth=10, fpn_channels=16).eval()
    >>> with torch.no_grad():
    ...     detections = model(torch.zeros(1, 1, 64, 64))
    >>> sorted(detections[0])
    ['boxes', 'labels', 'masks', 'scores']
"""

from __future__ import annotations

from medseg.models.maskrcnn.config import MaskRCNNConfig
from medseg.models.maskrcnn.model import MaskRCNN, build_maskrcnn
from medseg.models.maskrcnn.postprocess import PastedInstances, instances_to_semantic, paste_masks
from medseg.models.maskrcnn.roi_align import roi_align
from medseg.models.maskrcnn.targets import targets_from_instance_map, targets_from_label_map

__all__ = [
    "MaskRCNN",
    "MaskRCNNConfig",
    "PastedInstances",
    "build_maskrcnn",
    "instances_to_semantic",
    "paste_masks",
    "roi_align",
    "targets_from_instance_map",
    "targets_from_label_map",
]
