"""Training steps: one batch to one loss, chosen by ``task.kind``.

* ``semantic``: ``SegmentationLoss(model(image), label)`` (deep-supervision aware).
* ``instance`` (Mask R-CNN): the targets are built from the label patch (one instance per
  connected component of each lesion label, full connectivity as in ``medseg evaluate``,
  components under ``instances.min_target_voxels`` ignored), ``model(image, targets)`` returns
  the loss dict and the step returns its sum.

A step keeps the mean of its loss terms since the last :meth:`pop_terms` (for ``metrics.jsonl``);
terms accumulate on the device, so reading them costs one synchronisation per epoch.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.training.losses import SegmentationLoss

__all__ = ["InstanceStep", "SemanticStep", "TrainStep", "build_train_step"]


class TrainStep(Protocol):
    """``step(model, image, label) -> loss``; ``pop_terms()`` -> mean loss terms so far."""

    def __call__(
        self, model: nn.Module, image: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor: ...

    def pop_terms(self) -> dict[str, float]: ...


class SemanticStep:
    """U-Nets: the workflow's segmentation loss on the network's logits.

    Args:
        resolved: the workflow (loss name, deep supervision).
    """

    def __init__(self, resolved: ResolvedWorkflow) -> None:
        self.loss = SegmentationLoss(resolved)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Loss of ``model(image)`` against ``label`` ``[B, 1, *S]``."""
        return self.loss(model(image), label)

    def pop_terms(self) -> dict[str, float]:
        """No separate terms."""
        return {}


class InstanceStep:
    """Mask R-CNN: targets from the label patch, sum of the model's loss dict.

    Args:
        resolved: a ``task.kind: instance`` workflow (lesion labels, ``instances`` section).
    """

    def __init__(self, resolved: ResolvedWorkflow) -> None:
        from medseg.models.maskrcnn.builder import label_to_class

        self.classes = label_to_class(resolved)
        self.min_voxels = resolved.instances.min_target_voxels
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def targets(self, label: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One target dict per patch of ``label`` ``[B, 1, *S]`` (boxes in patch voxels)."""
        from medseg.models.maskrcnn import targets_from_label_map

        return [
            targets_from_label_map(
                patch[0],
                classes=self.classes,
                min_voxels=self.min_voxels,
            )
            for patch in label
        ]

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Sum of the Mask R-CNN losses of one batch (``image`` ``[B, C, *S]``)."""
        losses = model(image, self.targets(label))
        for name, value in losses.items():
            detached = value.detach().float()
            self._sums[name] = self._sums[name] + detached if name in self._sums else detached
        self._count += 1
        return torch.stack(list(losses.values())).sum()

    def pop_terms(self) -> dict[str, float]:
        """Mean of every loss term since the last call, then start again."""
        terms = {name: float(total) / max(self._count, 1) for name, total in self._sums.items()}
        self._sums, self._count = {}, 0
        return terms


def build_train_step(resolved: ResolvedWorkflow) -> TrainStep:
    """The step of the workflow's ``task.kind``."""
    if resolved.task.kind == "instance":
        return InstanceStep(resolved)
    return SemanticStep(resolved)
