"""Mask R-CNN inference on a whole preprocessed volume: tiling, merging, 2D -> 3D linking.

:func:`predict_instances` slides windows of the training patch size over the volume (2D models:
one window per slice position, the slice axis squeezed), with ``infer.overlap``; an image smaller
than the window is zero-padded (symmetrically, as MONAI); window positions are MONAI's, as in
:mod:`medseg.inference.windows`. Per window, the model's detections are
pasted into the window (:func:`~medseg.models.maskrcnn.paste_masks`) and moved to volume
coordinates. Then, across windows (and folds):

1. **rank**: a detection whose box touches a window border that is not the image border is
   probably cut; it ranks below every uncut one (its score is kept).
2. **NMS**: class-aware box NMS (IoU ``instances.nms_iou``, MONAI semantics) on the ranks
   drops the copies of a lesion seen by several windows.
3. **merge**: in rank order, a detection whose mask overlaps a same-class instance by at least
   ``instances.merge_overlap`` of the smaller of the two joins it (the pieces of a lesion cut by
   window borders, or larger than a window); otherwise its free voxels form a new instance.
4. **link** (2D models): instances on neighbouring slices of the same class whose masks overlap
   by at least ``instances.link_overlap`` of the smaller one become one 3D lesion.
5. lesions score the maximum of their parts; those under ``instances.score_threshold`` are
   dropped and the rest numbered ``1..K`` by descending score.

Frames: everything here is on the preprocessed grid ``(X, Y, Z)`` (after orientation and
spacing); :mod:`medseg.inference.instance_outputs` maps results to the source grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage
from torch import nn

from medseg.config.schema import InstanceConfig, ResolvedWorkflow
from medseg.evaluation.evaluate import PredictedInstances
from medseg.inference.windows import pad_to_window, window_slices
from medseg.labelmaps import label_dtype
from medseg.models.maskrcnn.nms import batched_nms
from medseg.models.runtime import autocast

__all__ = ["InstanceMap", "InstanceSettings", "instance_settings", "predict_instances"]

EDGE_MARGIN = 1.0  # voxels: a box this close to an inner window border counts as cut


@dataclass(frozen=True)
class InstanceSettings:
    """How to tile and merge.

    Attributes:
        window: 3D window over the volume axes (2D models: 1 along ``slice_axis``).
        spatial_dims: the model's dimensionality (2 or 3).
        slice_axis: axis a 2D model slides along.
        overlap: fraction of the window shared by neighbouring windows.
        sw_batch_size: windows per forward pass.
        class_labels: model class id -> label value.
        instances: thresholds of the merging steps (see the module docstring).
    """

    window: tuple[int, int, int]
    spatial_dims: int
    slice_axis: int
    overlap: float
    sw_batch_size: int
    class_labels: dict[int, int]
    instances: InstanceConfig


def instance_settings(resolved: ResolvedWorkflow) -> InstanceSettings:
    """Settings from a resolved ``task.kind: instance`` workflow."""
    from medseg.models.maskrcnn.builder import class_to_label

    return InstanceSettings(
        window=resolved.volume_patch,
        spatial_dims=resolved.spatial_dims,
        slice_axis=resolved.slice_axis,
        overlap=resolved.infer.overlap,
        sw_batch_size=resolved.infer.sw_batch_size,
        class_labels=class_to_label(resolved),
        instances=resolved.instances,
    )


@dataclass(frozen=True)
class InstanceMap:
    """Lesion instances on one grid.

    Attributes:
        instance_map: ``(X, Y, Z)`` int32; 0 background, ids ``1..K`` by descending score.
        labels: label value of instance ``i + 1`` at position ``i``.
        scores: score (in ``[0, 1]``) of instance ``i + 1`` at position ``i``.
    """

    instance_map: npt.NDArray[np.int32]
    labels: list[int]
    scores: list[float]

    def semantic(self) -> npt.NDArray[np.unsignedinteger]:
        """Label map ``(X, Y, Z)`` (:func:`~medseg.labelmaps.label_dtype`): instances' labels."""
        dtype = label_dtype(max(self.labels, default=0))
        return np.asarray([0, *self.labels], dtype=dtype)[self.instance_map]

    def predicted(self) -> PredictedInstances:
        """The instances as :class:`~medseg.evaluation.PredictedInstances` (scored lesions)."""
        ids = range(1, len(self.labels) + 1)
        return PredictedInstances(
            self.instance_map, dict(zip(ids, self.labels)), dict(zip(ids, self.scores))
        )


@dataclass
class _Detection:
    """One detection in volume coordinates (its mask already pasted and thresholded)."""

    slices: tuple[slice, slice, slice]  # tight box of ``mask`` in the volume
    mask: npt.NDArray[np.bool_]
    box: npt.NDArray[np.float64]  # [6] StandardMode box of the model, volume voxels
    label: int  # model class id
    score: float
    rank: float


@torch.no_grad()
def predict_instances(
    models: Sequence[nn.Module],
    image: torch.Tensor,
    settings: InstanceSettings,
    *,
    amp_dtype: torch.dtype | None = None,
) -> InstanceMap:
    """Detect and segment lesions in a preprocessed image (see the module docstring).

    Args:
        models: Mask R-CNNs in eval mode (one per fold; their detections are pooled).
        image: ``[C, X, Y, Z]`` on the models' device.
        settings: from :func:`instance_settings`.
        amp_dtype: autocast dtype (CUDA), or None for full precision.

    Returns:
        The lesions on the image's grid, label values of the workflow.
    """
    shape = tuple(int(n) for n in image.shape[1:])
    padded, pad = pad_to_window(image, settings.window)
    pad_before = [pad[4], pad[2], pad[0]]  # F.pad order: last axis first
    detections: list[_Detection] = []
    windows = [
        tuple(sl.start for sl in window)
        for window in window_slices(padded.shape[1:], settings.window, settings.overlap)
    ]
    for first in range(0, len(windows), settings.sw_batch_size):
        chunk = windows[first : first + settings.sw_batch_size]
        batch = torch.stack([padded[_window_index(s, settings)] for s in chunk])
        if settings.spatial_dims == 2:
            batch = batch.squeeze(2 + settings.slice_axis)
        for model in models:
            with autocast(image.device, amp_dtype):
                outputs = model(batch)
            for start, output in zip(chunk, outputs, strict=True):
                detections += _window_detections(
                    output, start, settings, tuple(padded.shape[1:]), pad_before, shape
                )
    kept = _nms(detections, settings.instances.nms_iou)
    instance_map, labels, scores = _merge(kept, shape, settings.instances.merge_overlap)
    if settings.spatial_dims == 2:
        instance_map, labels, scores = _link_slices(
            instance_map, labels, scores, settings.slice_axis, settings.instances.link_overlap
        )
    names = [settings.class_labels[c] for c in labels]
    return _finalize(instance_map, names, scores, settings.instances.score_threshold)


def _window_index(start: Sequence[int], settings: InstanceSettings) -> tuple[slice, ...]:
    """Index of one window in a ``[C, X, Y, Z]`` tensor."""
    spatial = [slice(s, s + w) for s, w in zip(start, settings.window)]
    return tuple([slice(None), *spatial])


def _window_detections(
    output: dict[str, torch.Tensor],
    start: Sequence[int],
    settings: InstanceSettings,
    padded_shape: Sequence[int],
    pad_before: Sequence[int],
    shape: Sequence[int],
) -> list[_Detection]:
    """Paste one window's detections and express them in volume coordinates."""
    from medseg.models.maskrcnn import paste_masks

    if output["boxes"].shape[0] == 0:
        return []
    axes = _network_axes(settings)
    window = [settings.window[a] for a in axes]
    pasted = paste_masks(
        output["masks"],
        output["boxes"],
        output["labels"],
        output["scores"],
        window,
        threshold=settings.instances.mask_threshold,
    )
    local_map = pasted.instance_map.cpu().numpy()
    boxes = output["boxes"].detach().float().cpu().numpy()
    cut = _touches_inner_border(boxes, start, axes, settings, padded_shape)
    found = []
    for index, bounds in enumerate(ndimage.find_objects(local_map)):
        if bounds is None:
            continue
        det = pasted.detection_index[index]
        mask = local_map[bounds] == index + 1
        full = [slice(s, s + 1) for s in start]  # the slice axis of a 2D model: one slice
        box = np.asarray([*start, *(s + 1 for s in start)], dtype=np.float64)
        for i, a in enumerate(axes):
            full[a] = slice(start[a] + bounds[i].start, start[a] + bounds[i].stop)
            box[[a, a + 3]] = boxes[det, [i, i + len(axes)]] + start[a]
        if settings.spatial_dims == 2:
            mask = np.expand_dims(mask, settings.slice_axis)
        clipped = _unpad(full, mask, box, pad_before, shape)
        if clipped is not None:
            score = float(pasted.scores[index])
            rank = score - 1.0 if cut[det] else score
            found.append(_Detection(*clipped, pasted.labels[index], score, rank))
    return found


def _network_axes(settings: InstanceSettings) -> list[int]:
    """Volume axes the network sees, in its order (2D: the in-plane axes)."""
    if settings.spatial_dims == 3:
        return [0, 1, 2]
    return [a for a in range(3) if a != settings.slice_axis]


def _touches_inner_border(
    boxes: npt.NDArray[np.floating],
    start: Sequence[int],
    axes: Sequence[int],
    settings: InstanceSettings,
    padded_shape: Sequence[int],
) -> npt.NDArray[np.bool_]:
    """Per box: touches a window border that lies inside the (padded) image."""
    cut = np.zeros(len(boxes), dtype=bool)
    dims = len(axes)
    for i, a in enumerate(axes):
        width = settings.window[a]
        if start[a] > 0:
            cut |= boxes[:, i] <= EDGE_MARGIN
        if start[a] + width < padded_shape[a]:
            cut |= boxes[:, i + dims] >= width - EDGE_MARGIN
    return cut


def _unpad(
    full: list[slice],
    mask: npt.NDArray[np.bool_],
    box: npt.NDArray[np.float64],
    pad_before: Sequence[int],
    shape: Sequence[int],
) -> tuple[tuple[slice, slice, slice], npt.NDArray[np.bool_], npt.NDArray[np.float64]] | None:
    """Shift from the padded to the image frame and crop to the image; None if nothing is left."""
    crop, out = [], []
    for a in range(3):
        lo, hi = full[a].start - pad_before[a], full[a].stop - pad_before[a]
        start, stop = max(lo, 0), min(hi, shape[a])
        if stop <= start:
            return None
        crop.append(slice(start - lo, stop - lo))
        out.append(slice(start, stop))
    mask = mask[tuple(crop)]
    if not mask.any():
        return None
    shift = np.asarray([*pad_before, *pad_before], dtype=np.float64)
    return (out[0], out[1], out[2]), mask, box - shift


def _nms(detections: list[_Detection], iou: float) -> list[_Detection]:
    """Class-aware NMS on the ranks; the survivors in descending rank order."""
    if not detections:
        return []
    boxes = torch.from_numpy(np.stack([d.box for d in detections]))
    ranks = torch.tensor([d.rank for d in detections], dtype=torch.float64)
    labels = torch.tensor([d.label for d in detections], dtype=torch.long)
    return [detections[i] for i in batched_nms(boxes, ranks, labels, iou).tolist()]


def _merge(
    detections: list[_Detection], shape: Sequence[int], overlap: float
) -> tuple[npt.NDArray[np.int32], list[int], list[float]]:
    """Paste detections (rank order) into one map, merging same-class overlapping masks."""
    instance_map = np.zeros(tuple(shape), dtype=np.int32)
    labels: list[int] = []
    scores: list[float] = []
    sizes: list[int] = []
    for det in detections:
        region = instance_map[det.slices]
        under = region[det.mask]
        ids, counts = np.unique(under[under > 0], return_counts=True)
        size = int(det.mask.sum())
        target = 0
        for found, count in sorted(zip(ids.tolist(), counts.tolist()), key=lambda x: -x[1]):
            same = labels[found - 1] == det.label
            if same and count >= overlap * min(size, sizes[found - 1]):
                target = found
                break
        free = det.mask & (region == 0)
        if target:
            scores[target - 1] = max(scores[target - 1], det.score)
        elif free.any():
            labels.append(det.label)
            scores.append(det.score)
            sizes.append(0)
            target = len(labels)
        else:
            continue
        region[free] = target
        sizes[target - 1] += int(free.sum())
    return instance_map, labels, scores


def _link_slices(
    instance_map: npt.NDArray[np.int32],
    labels: list[int],
    scores: list[float],
    slice_axis: int,
    overlap: float,
) -> tuple[npt.NDArray[np.int32], list[int], list[float]]:
    """Join same-class instances of neighbouring slices whose masks overlap enough."""
    count = len(labels)
    if count < 2:
        return instance_map, labels, scores
    parent = list(range(count + 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    stack = np.moveaxis(instance_map, slice_axis, -1)
    areas = [
        np.bincount(stack[..., k].ravel(), minlength=count + 1) for k in range(stack.shape[-1])
    ]
    for k in range(stack.shape[-1] - 1):
        a, b = stack[..., k], stack[..., k + 1]
        both = (a > 0) & (b > 0)
        if not both.any():
            continue
        pairs, shared = np.unique(
            np.stack([a[both], b[both]]).astype(np.int64), axis=1, return_counts=True
        )
        for (i, j), n in zip(pairs.T.tolist(), shared.tolist()):
            smaller = min(areas[k][i], areas[k + 1][j])
            if labels[i - 1] == labels[j - 1] and n >= overlap * smaller:
                parent[root(i)] = root(j)
    roots = np.asarray([0] + [root(i) for i in range(1, count + 1)])
    return _relabel(instance_map, roots, labels, scores)


def _relabel(
    instance_map: npt.NDArray[np.int32],
    roots: npt.NDArray[np.int64],
    labels: list[int],
    scores: list[float],
) -> tuple[npt.NDArray[np.int32], list[int], list[float]]:
    """Give every group of ids (same root) one new id; the group scores its best member."""
    groups = sorted(set(roots[1:].tolist()))
    new_id = {r: n for n, r in enumerate(groups, start=1)}
    lookup = np.asarray([0] + [new_id[int(r)] for r in roots[1:]], dtype=np.int32)
    best = {n: 0.0 for n in new_id.values()}
    kind = {}
    for old in range(1, len(roots)):
        n = new_id[int(roots[old])]
        best[n] = max(best[n], scores[old - 1])
        kind[n] = labels[old - 1]
    ids = sorted(best)
    return lookup[instance_map], [kind[i] for i in ids], [best[i] for i in ids]


def _finalize(
    instance_map: npt.NDArray[np.int32], labels: list[int], scores: list[float], threshold: float
) -> InstanceMap:
    """Drop instances under ``threshold``; renumber ``1..K`` by descending score."""
    order = [i for i in np.argsort(-np.asarray(scores), kind="stable") if scores[i] >= threshold]
    lookup = np.zeros(len(labels) + 1, dtype=np.int32)
    for new, old in enumerate(order, start=1):
        lookup[old + 1] = new
    return InstanceMap(
        instance_map=lookup[instance_map],
        labels=[labels[i] for i in order],
        scores=[float(scores[i]) for i in order],
    )
