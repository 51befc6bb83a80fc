"""Planning rules for Mask R-CNN workflows (``model.name: maskrcnn``); no torch.

* patch size: every axis a multiple of the network's ``size_divisible`` (its coarsest FPN stride:
  32 with the default ``returned_layers`` (1, 2, 3)). ``auto`` takes the median image at the
  target spacing (2D: its in-plane shape), rounds every axis to the nearest multiple (at least
  one), then shrinks the axis that is largest relative to the median until the patch holds at
  most :data:`MAX_PATCH_VOXELS` voxels (a CPU-sized budget). An explicit ``train.patch_size``
  that is not a multiple is refused (the nearest valid size is in the hint).
* batch size (``auto``): 4 patches in 2D, 2 in 3D.
* ``model.kernels`` / ``model.strides`` are DynUNet settings: resolved to ``[]``;
  ``deep_supervision_levels`` to 0 (a Mask R-CNN has no deep supervision heads).
* the manifest must declare lesion labels: they are the detected classes (1..n in their order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medseg.config.schema import AUTO
from medseg.errors import ConfigError
from medseg.manifest.schema import Manifest

MAX_PATCH_VOXELS = {2: 512 * 512, 3: 128 * 128 * 64}
DEFAULT_BATCH = {2: 4, 3: 2}
DEFAULT_RETURNED_LAYERS = (1, 2, 3)  # MaskRCNNConfig.returned_layers


def size_divisible(options: Mapping[str, Any]) -> int:
    """The multiple every input size must be: twice the stride of the last returned layer.

    Mirrors :attr:`medseg.models.maskrcnn.MaskRCNN.size_divisible` (ResNet layer ``k`` has
    stride ``2 ** (k + 1)``; the FPN adds a max-pooled level at twice the last stride) without
    importing torch.

    Example:
        >>> size_divisible({}), size_divisible({"returned_layers": [1, 2]})
        (32, 16)
    """
    layers = options.get("returned_layers") or DEFAULT_RETURNED_LAYERS
    return 2 * 2 ** (max(int(k) for k in layers) + 1)


def auto_patch(median: Sequence[float], *, divisible: int, max_voxels: int) -> list[int]:
    """Median shape rounded to multiples of ``divisible``, shrunk to at most ``max_voxels``.

    Example:
        >>> auto_patch([96, 96, 48], divisible=32, max_voxels=128 * 128 * 64)
        [96, 96, 64]
        >>> auto_patch([700, 500], divisible=32, max_voxels=512 * 512)
        [608, 416]
    """
    target = np.maximum(np.asarray(median, dtype=np.float64), 1.0)
    patch = np.maximum(np.rint(target / divisible), 1).astype(np.int64) * divisible
    while int(np.prod(patch)) > max_voxels and np.any(patch > divisible):
        ratio = np.where(patch > divisible, patch / target, -np.inf)
        patch[int(np.argmax(ratio))] -= divisible
    return [int(v) for v in patch]


def _check_patch(patch: Sequence[int], divisible: int) -> list[int]:
    values = [int(v) for v in patch]
    if any(v < 1 or v % divisible for v in values):
        nearest = [max(divisible, round(v / divisible) * divisible) for v in values]
        raise ConfigError(
            f"train.patch_size: Mask R-CNN needs multiples of {divisible} on every axis, "
            f"got {values}",
            hint=f"use {nearest}, or patch_size: auto",
        )
    return values


def plan_maskrcnn(
    train: dict[str, Any],
    model: dict[str, Any],
    median_shape: Sequence[float],
    *,
    dims: int,
    manifest: Manifest,
) -> list[int]:
    """Resolve the Mask R-CNN-specific ``auto`` values in place; returns the patch size.

    Args:
        train: the workflow's ``train`` section as a dict (``patch_size``, ``batch_size``).
        model: the ``model`` section as a dict (``options``, ``kernels``, ``strides``, ...).
        median_shape: median image shape in voxels of the target spacing, network axes only
            (2D: the in-plane axes).
        dims: 2 or 3.
        manifest: the dataset (its ``lesion_labels`` become the detected classes).

    Raises:
        ConfigError: no lesion labels, or an explicit patch size that is not a multiple of the
            network's ``size_divisible``.
    """
    if not manifest.lesion_labels:
        raise ConfigError(
            f"model maskrcnn detects lesion labels, but manifest {manifest.name!r} declares none",
            hint="rebuild it with `medseg manifest build ... --lesion-labels 1,2`",
        )
    divisible = size_divisible(model["options"])
    if train["patch_size"] == AUTO:
        patch = auto_patch(median_shape, divisible=divisible, max_voxels=MAX_PATCH_VOXELS[dims])
    else:
        patch = _check_patch(train["patch_size"], divisible)
    train["patch_size"] = patch
    if train["batch_size"] == AUTO:
        train["batch_size"] = DEFAULT_BATCH[dims]
    model.update(kernels=[], strides=[], deep_supervision=False, deep_supervision_levels=0)
    for key, default in (("base_filters", 32), ("max_filters", 256)):  # unused, but concrete
        if model[key] == AUTO:
            model[key] = default
    return patch
