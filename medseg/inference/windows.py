"""Sliding-window inference shared by validation and prediction.

One code path for 2D and 3D: a 2D model slides a window of size ``(px, py)`` over every slice,
which is a 3D window with size 1 along the slice axis, squeezed before the network. Window
positions and the gaussian importance map are MONAI's (``dense_patch_slices``,
``compute_importance_map``), so with ``crop_foreground`` and ``skip_empty`` off the result equals
``monai.inferers.sliding_window_inference`` (the benchmark checks it).

Doing less work: ``crop_foreground`` restricts sliding to the bounding box of the foreground
region (body for CT: voxels above the clip floor; retina band for OCT and non-zero for MR: Otsu
on a 4x downsampled copy) plus a margin of up to an eighth of a window (less where the margin
would add a row of windows); ``skip_empty`` skips windows whose region holds no foreground.
Voxels no computed window covers are background. Axes shorter than a 4-voxel block (a one-slice
image, a thin slab) are pooled over what they have and get no crop margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.data.utils import compute_importance_map, dense_patch_slices

from medseg.config.schema import ResolvedWorkflow
from medseg.inference.tta import flip_sets
from medseg.labelmaps import label_dtype

Network = Callable[[torch.Tensor], torch.Tensor]
FOREGROUND_STRIDE = 4


@dataclass(frozen=True)
class WindowSettings:
    """How to slide.

    Attributes:
        window: 3D window size over the volume axes (2D models: 1 along ``slice_axis``).
        spatial_dims: the network's dimensionality (2 or 3).
        slice_axis: axis the 2D model slides along (ignored in 3D).
        overlap: fraction of overlap between windows (MONAI's definition).
        blend: ``gaussian`` (sigma 1/8 of the window) or ``constant``.
        sw_batch_size: windows per forward pass.
        crop_foreground: slide only over the foreground bounding box.
        skip_empty: skip windows without foreground.
        foreground_rule: ``above_min`` for CT-like clipped intensities, else ``otsu``.
    """

    window: tuple[int, int, int]
    spatial_dims: int
    slice_axis: int
    overlap: float
    blend: str
    sw_batch_size: int
    crop_foreground: bool
    skip_empty: bool
    foreground_rule: str = "otsu"


def plain_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A plain ``torch.Tensor`` view of a MetaTensor (no per-op metadata overhead)."""
    as_tensor = getattr(tensor, "as_tensor", None)
    return as_tensor() if callable(as_tensor) else tensor


def window_settings(resolved: ResolvedWorkflow, **overrides: object) -> WindowSettings:
    """Settings from a resolved workflow's ``infer`` section (keyword overrides win)."""
    infer = resolved.infer
    values: dict[str, object] = {
        "window": resolved.volume_patch,
        "spatial_dims": resolved.spatial_dims,
        "slice_axis": resolved.slice_axis,
        "overlap": infer.overlap,
        "blend": infer.blend,
        "sw_batch_size": infer.sw_batch_size,
        "crop_foreground": infer.crop_foreground,
        "foreground_rule": "above_min"
        if resolved.preprocess.intensity.scheme in ("ct", "ct_window")
        else "otsu",
        "skip_empty": infer.skip_empty_windows,
    }
    values.update(overrides)
    return WindowSettings(**values)  # type: ignore[arg-type]


def scan_interval(size: Sequence[int], window: Sequence[int], overlap: float) -> list[int]:
    """MONAI's interval between window starts: ``int(window x (1 - overlap))``, at least 1."""
    out = []
    for s, w in zip(size, window):
        out.append(int(w) if w == s else max(int(w * (1 - overlap)), 1))
    return out


def foreground_mask(image: torch.Tensor, rule: str = "otsu") -> torch.Tensor:
    """Coarse foreground mask ``[X/4, Y/4, Z/4]`` (bool) of a preprocessed image ``[C, X, Y, Z]``.

    Rules: ``otsu`` (OCT retina band, MR): 4x average pooling of the channel mean, Otsu's
    threshold, dilated by one block; ``above_min`` (CT after clipping: air and fat sit at the
    clip floor): blocks with any voxel above the image minimum. A constant image is all
    foreground (nothing to skip).
    """
    data = image.float().mean(dim=0, keepdim=True)[None]
    lowest = float(data.min())
    if float(data.max()) - lowest < 1e-6:
        shape = [-(-n // FOREGROUND_STRIDE) for n in image.shape[1:]]
        return torch.ones(shape, dtype=torch.bool)
    # axes shorter than a block (a single slice, a thin slab) pool over what they have: the
    # output still has ceil(n / 4) cells per axis, so block coordinates stay n // 4
    k = [min(FOREGROUND_STRIDE, int(n)) for n in image.shape[1:]]
    if rule == "above_min":
        above = (data > lowest + 1e-3).float()
        blocks = F.max_pool3d(above, kernel_size=k, stride=FOREGROUND_STRIDE, ceil_mode=True)
        return blocks[0, 0] > 0
    from skimage.filters import threshold_otsu

    pooled = F.avg_pool3d(data, kernel_size=k, stride=FOREGROUND_STRIDE, ceil_mode=True)
    values = pooled[0, 0].cpu().numpy()
    mask = (pooled > float(threshold_otsu(values.ravel()))).float()
    return F.max_pool3d(mask, kernel_size=3, stride=1, padding=1)[0, 0] > 0


def window_count(length: int, window: int, interval: int) -> int:
    """Windows MONAI's ``dense_patch_slices`` places along an axis of ``length`` voxels."""
    if length <= window:
        return 1
    return -(-(length - window) // interval) + 1


def foreground_box(
    mask: torch.Tensor,
    shape: Sequence[int],
    margin: Sequence[int],
    window: Sequence[int],
    interval: Sequence[int] | None = None,
) -> tuple[slice, slice, slice]:
    """Bounding box (full-resolution slices) of a coarse mask plus context.

    Each axis grows by up to ``margin`` voxels per side; with ``interval`` (window starts, see
    :func:`scan_interval`) the margin shrinks until it no longer adds a window along that axis
    (the windows still cover the whole foreground, only the context at the box border is less).
    An axis shorter than the window is widened to the window with real image context.
    """
    nz = torch.nonzero(mask)
    if nz.numel() == 0:
        return tuple(slice(0, 0) for _ in shape)  # type: ignore[return-value]
    lo = nz.min(dim=0).values.tolist()
    hi = nz.max(dim=0).values.tolist()
    box = []
    for axis, n in enumerate(shape):
        first, last = lo[axis] * FOREGROUND_STRIDE, min((hi[axis] + 1) * FOREGROUND_STRIDE, n)
        grow = margin[axis]
        if interval is not None:
            w, step = min(window[axis], n), interval[axis]
            needed = window_count(last - first, w, step)
            while grow > 0 and window_count(min(last - first + 2 * grow, n), w, step) > needed:
                grow -= 1
        start, stop = max(first - grow, 0), min(last + grow, n)
        short = min(window[axis], n) - (stop - start)
        if short > 0:
            start = max(0, start - short // 2)
            stop = min(n, start + min(window[axis], n))
            start = stop - min(window[axis], n)
        box.append(slice(start, stop))
    return tuple(box)  # type: ignore[return-value]


def crop_margin(window: Sequence[int]) -> list[int]:
    """Context kept around the foreground: an eighth of the window (at least 2 voxels)."""
    return [0 if w == 1 else max(w // 8, 2) for w in window]


def pad_to_window(image: torch.Tensor, window: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
    """Constant-pad ``[C, *S]`` so each axis is at least the window (MONAI's symmetric split).

    Returns:
        ``(padded, pad)``; ``pad`` in :func:`torch.nn.functional.pad` order (last axis first).
    """
    pad: list[int] = []
    for axis in range(3, 0, -1):
        diff = max(window[axis - 1] - image.shape[axis], 0)
        pad += [diff // 2, diff - diff // 2]
    return (F.pad(image, pad) if any(pad) else image), pad


def _unpad(tensor: torch.Tensor, pad: list[int]) -> torch.Tensor:
    if not any(pad):
        return tensor
    index = [slice(None)]
    for axis in range(1, 4):
        before, after = pad[2 * (3 - axis)], pad[2 * (3 - axis) + 1]
        index.append(slice(before, tensor.shape[axis] - after))
    return tensor[tuple(index)]


def window_slices(
    shape: Sequence[int], window: Sequence[int], overlap: float
) -> list[tuple[slice, ...]]:
    """MONAI's window positions over ``shape`` (the last window flush with the end)."""
    return dense_patch_slices(shape, window, scan_interval(shape, window, overlap))


def _windows(
    shape: Sequence[int], settings: WindowSettings, mask: torch.Tensor | None, offset: Sequence[int]
) -> list[tuple[slice, ...]]:
    slices = window_slices(shape, settings.window, settings.overlap)
    if mask is None:
        return slices
    keep = []
    for sl in slices:  # mask coordinates are of the full image: shift by the crop offset
        coarse = tuple(
            slice((s.start + o) // FOREGROUND_STRIDE, -(-(s.stop + o) // FOREGROUND_STRIDE))
            for s, o in zip(sl, offset)
        )
        if bool(mask[coarse].any()):
            keep.append(sl)
    return keep


def _channels(spatial: Sequence[slice]) -> tuple[slice, ...]:
    """Index ``[all channels, *spatial]``."""
    return (slice(None), *spatial)


def _forward(network: Network, batch: torch.Tensor, settings: WindowSettings) -> torch.Tensor:
    """Run the network on ``[B, C, *window]``; 2D models see the slice axis squeezed."""
    if settings.spatial_dims == 3:
        return network(batch)
    axis = 2 + settings.slice_axis
    return network(batch.squeeze(axis)).unsqueeze(axis)


def sliding_window_logits(
    network: Network,
    image: torch.Tensor,
    settings: WindowSettings,
    *,
    num_classes: int,
    mask: torch.Tensor | None = None,
    offset: Sequence[int] = (0, 0, 0),
    accumulate_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend window logits over ``image`` ``[C, X, Y, Z]`` (on the network's device).

    Returns:
        ``(logits [K, X, Y, Z], covered [X, Y, Z] bool)``; voxels no window covered have
        logits 0 and ``covered`` False.
    """
    padded, pad = pad_to_window(image, settings.window)
    shape = padded.shape[1:]
    device = padded.device
    weight = compute_importance_map(
        settings.window,
        mode=settings.blend,
        sigma_scale=0.125,
        device=device,
        dtype=accumulate_dtype,
    )
    logits = torch.zeros((num_classes, *shape), dtype=accumulate_dtype, device=device)
    counts = torch.zeros(shape, dtype=accumulate_dtype, device=device)
    slices = _windows(shape, settings, mask if not any(pad) else None, offset)
    for start in range(0, len(slices), settings.sw_batch_size):
        chunk = slices[start : start + settings.sw_batch_size]
        batch = torch.stack([padded[_channels(sl)] for sl in chunk])
        out = _forward(network, batch, settings)
        if isinstance(out, (tuple, list)):
            out = out[0]
        for sl, window_logits in zip(chunk, out):
            logits[_channels(sl)] += window_logits.to(accumulate_dtype) * weight
            counts[sl] += weight
    covered = counts > 0
    logits = logits / torch.where(covered, counts, torch.ones_like(counts))
    return _unpad(logits, pad), _unpad(covered[None], pad)[0]


def predict_probabilities(
    network: Network,
    image: torch.Tensor,
    settings: WindowSettings,
    *,
    num_classes: int,
    tta_axes: Sequence[int] = (),
    accumulate_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Softmax probabilities ``[K, X, Y, Z]`` for a preprocessed image ``[C, X, Y, Z]``.

    Crops to the foreground box and skips empty windows as the settings say; everything outside
    the computed windows is background (probability 1 for class 0). With ``tta_axes`` (volume
    axes, :mod:`medseg.inference.tta`), probabilities are averaged over every combination of
    flips.
    """
    shape = image.shape[1:]
    box: tuple[slice, ...] = tuple(slice(0, n) for n in shape)
    mask = None
    if settings.crop_foreground or settings.skip_empty:
        mask = foreground_mask(image, settings.foreground_rule).to(image.device)
        if settings.crop_foreground:
            margin = crop_margin(settings.window)
            interval = scan_interval(shape, settings.window, settings.overlap)
            box = foreground_box(mask, shape, margin, settings.window, interval)
    probs = torch.zeros((num_classes, *shape), dtype=accumulate_dtype, device=image.device)
    probs[0] = 1.0
    if any(s.stop - s.start == 0 for s in box):
        return probs
    crop = image[_channels(box)]
    offset = [s.start for s in box]
    total = torch.zeros((num_classes, *crop.shape[1:]), dtype=accumulate_dtype, device=image.device)
    flips = flip_sets(tta_axes)
    for flip in flips:
        dims = [1 + a for a in flip]
        source = crop.flip(dims) if dims else crop
        flip_mask = None
        if settings.skip_empty and mask is not None and not flip:
            flip_mask = mask
        logits, covered = sliding_window_logits(
            network,
            source,
            settings,
            num_classes=num_classes,
            mask=flip_mask,
            offset=offset,
            accumulate_dtype=accumulate_dtype,
        )
        part = torch.softmax(logits.float(), dim=0).to(accumulate_dtype)
        part[0][~covered] = 1.0
        part[1:, ~covered] = 0.0
        total += part.flip(dims) if dims else part
    probs[_channels(box)] = total / len(flips)
    return probs


def argmax_channels(probs: torch.Tensor) -> torch.Tensor:
    """Arg-max over the class axis of ``[K, *S]`` (first maximum wins), on the same device.

    A running comparison over the few classes is several times faster than ``torch.argmax``
    along a leading, strided axis for large volumes.
    """
    dtype = torch.uint8 if label_dtype(probs.shape[0] - 1) is np.uint8 else torch.int16
    labels = torch.zeros(probs.shape[1:], dtype=dtype, device=probs.device)
    best = probs[0].clone()
    for k in range(1, probs.shape[0]):
        better = probs[k] > best
        labels[better] = k
        best = torch.maximum(best, probs[k])
    return labels


def labels_from_probabilities(probs: torch.Tensor) -> np.ndarray:
    """Arg-max label map ``(X, Y, Z)`` on the host (:func:`~medseg.labelmaps.label_dtype`)."""
    labels = argmax_channels(probs).to("cpu").numpy()
    return labels.astype(label_dtype(probs.shape[0] - 1))
