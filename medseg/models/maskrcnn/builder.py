"""Mask R-CNN from a resolved workflow: the registry builder and the label <-> class mapping.

The detected classes are the manifest's lesion labels, in the order of
``resolved.plan.lesion_labels``, numbered ``1..n`` (0 is background); every other label (an
organ, say) is not learned. ``model.options`` are :class:`MaskRCNNConfig` fields.
"""

from __future__ import annotations

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import ConfigError
from medseg.models.maskrcnn.model import MaskRCNN, build_maskrcnn

__all__ = ["build_from_workflow", "class_to_label", "label_to_class"]


def label_to_class(resolved: ResolvedWorkflow) -> dict[int, int]:
    """``{label value: class id}`` of the detected classes (lesion labels -> ``1..n``).

    Raises:
        ConfigError: the workflow has no lesion labels.
    """
    lesions = [int(v) for v in resolved.plan.lesion_labels]
    if not lesions:
        raise ConfigError(
            f"workflow {resolved.name}: Mask R-CNN needs lesion labels in the manifest",
            hint="rebuild the manifest with --lesion-labels",
        )
    return {value: index for index, value in enumerate(lesions, start=1)}


def class_to_label(resolved: ResolvedWorkflow) -> dict[int, int]:
    """``{class id: label value}``, the inverse of :func:`label_to_class`."""
    return {cls: value for value, cls in label_to_class(resolved).items()}


def build_from_workflow(resolved: ResolvedWorkflow) -> MaskRCNN:
    """The workflow's Mask R-CNN (``MODEL_BUILDERS["maskrcnn"]``).

    Args:
        resolved: a planned ``model.name: maskrcnn`` workflow; ``spatial_dims`` from
            ``task.dims``, input channels from the plan, one class per lesion label, and
            ``model.options`` passed to :func:`build_maskrcnn`.

    Raises:
        ConfigError: no lesion labels, or an unknown / invalid option.
    """
    classes = label_to_class(resolved)
    return build_maskrcnn(
        resolved.spatial_dims,
        resolved.plan.in_channels,
        len(classes) + 1,
        **dict(resolved.model.options),
    )
