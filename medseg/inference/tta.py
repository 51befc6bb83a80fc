"""Test-time augmentation: mirror the scan along the axes training flipped, average the results.

With ``infer.tta`` (or ``medseg predict --tta``) the U-Net path predicts every combination of
flips along :func:`tta_volume_axes` (``2**n`` passes, the identity first) and averages the
probabilities (:func:`medseg.inference.windows.predict_probabilities`). Mask R-CNN runs take no
test-time augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

from medseg.config.schema import ResolvedWorkflow

__all__ = ["flip_sets", "tta_axes", "tta_volume_axes"]


def tta_volume_axes(resolved: ResolvedWorkflow) -> list[int]:
    """Volume axes to flip for test-time augmentation (the training flip axes, mapped)."""
    axes = list(resolved.train.augmentation.flip_axes)
    if resolved.spatial_dims == 3:
        return axes
    in_plane = [a for a in range(3) if a != resolved.slice_axis]
    return [in_plane[a] for a in axes if a < 2]


def tta_axes(resolved: ResolvedWorkflow, tta: bool | None) -> list[int]:
    """Axes to flip for one prediction: none without TTA (``tta=None``: ``infer.tta``)."""
    use = resolved.infer.tta if tta is None else tta
    if not use or resolved.task.kind != "semantic":
        return []
    return tta_volume_axes(resolved)


def flip_sets(axes: Sequence[int]) -> list[list[int]]:
    """Every subset of ``axes`` (the identity first): ``2**len(axes)`` test-time flips."""
    sets: list[list[int]] = [[]]
    for axis in axes:
        sets += [[*s, axis] for s in sets]
    return sets
