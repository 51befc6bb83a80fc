"""Training targets (boxes, labels, instance masks) from semantic or instance label maps.

Boxes follow the model's frame: MONAI ``StandardMode`` in voxels of the map, voxel ``i`` spanning
``[i, i + 1)``, so an instance covering voxels ``a..b`` along an axis gets ``[a, b + 1]`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from medseg.labelmaps import label_components

__all__ = ["targets_from_instance_map", "targets_from_label_map"]

ArrayLike = npt.NDArray[np.integer] | torch.Tensor


def targets_from_label_map(
    label: ArrayLike,
    *,
    classes: Sequence[int] | Mapping[int, int],
    min_voxels: int = 1,
    connectivity: int = 26,
) -> dict[str, torch.Tensor]:
    """One instance per connected component of each selected class of a semantic label map.

    Args:
        label: ``(X, Y[, Z])`` integer label map (numpy or tensor).
        classes: label values to turn into instances; a sequence keeps each value as the class
            id, a mapping ``{label_value: class_id}`` renames them (class ids >= 1).
        min_voxels: components with fewer voxels are dropped.
        connectivity: neighbours that connect voxels, as in
            :func:`medseg.labelmaps.label_components`: 6, 18 or 26 (default) in 3D, 4 or 8 in
            2D (a 2D map also takes 6 = 4, 18 / 26 = 8).

    Returns:
        ``boxes`` float32 ``[N, 2D]``, ``labels`` int64 ``[N]`` and ``masks`` uint8
        ``[N, X, Y(, Z)]`` on the CPU. Instances are ordered by class (in the order of
        ``classes``), then by component number (raster order of each component's first voxel).
        No instance gives ``[0, 2D]``, ``[0]`` and ``[0, X, Y(, Z)]``.

    Raises:
        ValueError: ``label`` is not 2D/3D integer data, or ``connectivity`` / class ids are out
            of range.

    Example:
        >>> label = np.zeros((6, 5), dtype=np.uint8); label[1:3, 2:4] = 2
        >>> targets_from_label_map(label, classes=[2])["boxes"].tolist()
        [[1.0, 2.0, 3.0, 4.0]]
    """
    array = _as_integer_array(label, "label")
    lookup = dict(classes) if isinstance(classes, Mapping) else {int(c): int(c) for c in classes}
    _check_class_ids(lookup.values())
    found: list[_Instance] = []
    labels: list[int] = []
    for value, class_id in lookup.items():
        components, count = label_components(array == value, connectivity=connectivity)
        instances = _instances(components, range(1, count + 1), min_voxels)
        found += instances
        labels += [class_id] * len(instances)
    return _pack(found, labels, array.shape)


def targets_from_instance_map(
    instances: ArrayLike,
    instance_classes: Mapping[int, int],
    *,
    min_voxels: int = 1,
) -> dict[str, torch.Tensor]:
    """Targets from an instance label map (0 = background) and each instance's class.

    Args:
        instances: ``(X, Y[, Z])`` integer map, one id per instance (an instance may consist of
            several disconnected parts; its box covers them all).
        instance_classes: ``{instance_id: class_id}`` with class ids >= 1; ids listed here but
            absent from the map are skipped.
        min_voxels: instances with fewer voxels are dropped.

    Returns:
        As :func:`targets_from_label_map`, instances in increasing id order.

    Raises:
        ValueError: an instance id of the map has no class, or a class id is < 1.
    """
    array = _as_integer_array(instances, "instances")
    _check_class_ids(instance_classes.values())
    ids = np.unique(array)
    ids = ids[ids != 0]
    missing = sorted(int(i) for i in ids if int(i) not in instance_classes)
    if missing:
        raise ValueError(f"instance ids {missing} of the map have no class in instance_classes")
    found = _instances(array, ids.tolist(), min_voxels)
    labels = [int(instance_classes[instance.id]) for instance in found]
    return _pack(found, labels, array.shape)


def _as_integer_array(data: ArrayLike, name: str) -> npt.NDArray[np.integer]:
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D or 3D map (X, Y[, Z]), got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must not hold negative values, got {array.min()}")
    return array


def _check_class_ids(class_ids: Iterable[int]) -> None:
    bad = [c for c in class_ids if int(c) < 1]
    if bad:
        raise ValueError(f"class ids must be >= 1 (0 is background), got {bad}")


class _Instance(NamedTuple):
    id: int
    slices: tuple[slice, ...]  # tight bounding box of the instance
    local_mask: npt.NDArray[np.bool_]  # the instance inside ``slices``


def _instances(
    components: npt.NDArray[np.integer], ids: Iterable[int], min_voxels: int
) -> list[_Instance]:
    """Instances ``ids`` of an integer map with at least ``min_voxels`` voxels, in ``ids`` order."""
    bounds = ndimage.find_objects(components)
    found = []
    for instance_id in ids:
        slices = bounds[instance_id - 1] if instance_id <= len(bounds) else None
        if slices is None:
            continue
        local = components[slices] == instance_id
        if int(local.sum()) >= min_voxels:
            found.append(_Instance(instance_id, slices, local))
    return found


def _pack(
    instances: list[_Instance], labels: list[int], shape: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    dims = len(shape)
    masks = np.zeros((len(instances), *shape), dtype=np.uint8)
    boxes = np.zeros((len(instances), 2 * dims), dtype=np.float32)
    for i, instance in enumerate(instances):
        masks[i][instance.slices] = instance.local_mask
        boxes[i, :dims] = [s.start for s in instance.slices]
        boxes[i, dims:] = [s.stop for s in instance.slices]
    return {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.tensor(labels, dtype=torch.long),
        "masks": torch.from_numpy(masks),
    }
