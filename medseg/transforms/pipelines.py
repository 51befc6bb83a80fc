"""Train and eval pipelines (MONAI dictionary transforms) built from a resolved workflow.

* :func:`preprocess_transforms` - deterministic, invertible: load -> orientation -> spacing ->
  intensity normalisation. Cached for training; inverted with ``Invertd`` at inference.
* :func:`patch_transforms` - random, training only: pad, foreground-aware patch sampling
  (per-class ratios; 2D workflows sample one slice and squeeze it), spatial and intensity
  augmentation.

Keys: ``image`` (channel-first, all channels), ``label`` (one channel, integer).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from monai import transforms as mt

from medseg.config.schema import ResolvedIntensity, ResolvedWorkflow
from medseg.labelmaps import label_dtype
from medseg.transforms.load import LabelOnImageGridd, LoadVolumed
from medseg.types import PathLike

IMAGE, LABEL = "image", "label"
INDICES = "label_cls_indices"
MAX_INDICES_PER_CLASS = 20_000
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def channel_keys(resolved: ResolvedWorkflow) -> list[str]:
    """Dictionary keys of the input channels (``image`` for a single channel).

    Several channels load under ``channel_<i>`` and are concatenated into ``image``; the keys must
    not start with ``image_``, which MONAI's dictionary transforms take for ``image``'s metadata
    dictionaries (``Spacingd`` then calls ``.update`` on a channel's MetaTensor).
    """
    channels = resolved.plan.channels
    return [IMAGE] if len(channels) == 1 else [f"channel_{i}" for i in range(len(channels))]


def target_pixdim(resolved: ResolvedWorkflow) -> list[float]:
    """Spacing for MONAI's Spacingd; 0 keeps the native spacing (2D: along the slice axis)."""
    pixdim = list(resolved.target_spacing)
    if resolved.spatial_dims == 2:
        pixdim[resolved.slice_axis] = 0.0
    return pixdim


def intensity_transforms(intensity: ResolvedIntensity, keys: Sequence[str] = (IMAGE,)) -> list[Any]:
    """Normalisation for a resolved intensity section (MONAI transforms only)."""
    scheme = intensity.scheme
    if scheme == "ct":
        clip = cast(tuple[float, float], intensity.clip)
        mean, std = cast(float, intensity.mean), cast(float, intensity.std)
        return [
            mt.ThresholdIntensityd(keys, threshold=clip[1], above=False, cval=clip[1]),
            mt.ThresholdIntensityd(keys, threshold=clip[0], above=True, cval=clip[0]),
            mt.NormalizeIntensityd(keys, subtrahend=mean, divisor=std),  # type: ignore[arg-type]
        ]
    if scheme == "ct_window":
        lo, hi = intensity.window  # type: ignore[misc]
        return [mt.ScaleIntensityRanged(keys, a_min=lo, a_max=hi, b_min=-1.0, b_max=1.0, clip=True)]
    if scheme in ("zscore", "oct"):
        lower, upper = intensity.percentiles
        return [
            mt.ClipIntensityPercentilesd(keys, lower=lower, upper=upper, channel_wise=True),
            mt.NormalizeIntensityd(keys, channel_wise=True),
        ]
    return []


def preprocess_transforms(
    resolved: ResolvedWorkflow,
    *,
    root: PathLike | None,
    with_label: bool,
    for_training: bool = False,
    load: bool = True,
    label_mapping: Mapping[int, int] | None = None,
) -> mt.Compose:
    """Deterministic preprocessing; ``for_training`` also precomputes per-class voxel indices.

    ``load=False`` starts from MetaTensors already in the dictionary (the predictor reads the
    source once, keeps its geometry, and inverts this Compose with ``Invertd``).
    ``label_mapping`` (a manifest's, file value -> label) is applied to the label; a label read
    from a 2D image file takes the image's grid.
    """
    keys = channel_keys(resolved)
    load_keys = [*keys, LABEL] if with_label else keys
    dtypes: dict[Hashable, Any] = {k: np.float32 for k in keys}
    spatial = [IMAGE, LABEL] if with_label else [IMAGE]
    ops: list[Any] = [LoadVolumed(load_keys, root=root, dtypes=dtypes)] if load else []
    if with_label:
        ops += _label_ops(resolved, keys[0], label_mapping or {})
    if len(keys) > 1:
        ops += [mt.ConcatItemsd(keys, IMAGE), mt.DeleteItemsd(keys)]
    ops += [
        mt.Orientationd(spatial, axcodes=resolved.preprocess.orientation, labels=RAS_LABELS),
        mt.Spacingd(
            spatial, pixdim=target_pixdim(resolved), mode=("bilinear", "nearest")[: len(spatial)]
        ),
        *intensity_transforms(resolved.preprocess.intensity),
        mt.EnsureTyped(spatial, track_meta=True),
    ]
    if for_training:
        ops.append(
            mt.ClassesToIndicesd(
                LABEL,
                indices_postfix="_cls_indices",
                num_classes=resolved.num_classes,
                max_samples_per_class=MAX_INDICES_PER_CLASS,
            )
        )
    return mt.Compose(ops)


def _label_ops(resolved: ResolvedWorkflow, image_key: str, mapping: Mapping[int, int]) -> list[Any]:
    """Label grid, value mapping and integer dtype (after loading: the file's values are mapped
    before they are narrowed)."""
    dtype = label_dtype(max(int(v) for v in resolved.plan.labels), signed=True)
    ops: list[Any] = [LabelOnImageGridd(LABEL, image_key)]
    if mapping:
        ops.append(mt.MapLabelValued(LABEL, list(mapping), list(mapping.values()), dtype=np.int32))
    ops.append(mt.CastToTyped(LABEL, dtype=dtype))
    return ops


def sample_size(resolved: ResolvedWorkflow) -> list[int]:
    """3D crop size of a training sample (2D: 1 along the slice axis)."""
    return list(resolved.volume_patch)


def class_ratios(resolved: ResolvedWorkflow) -> list[float]:
    """Sampling ratio per class: background 1 - f, foreground classes share f equally."""
    n = resolved.num_classes
    fg = resolved.train.foreground_ratio
    if n < 2:
        return [1.0]
    return [1.0 - fg] + [fg / (n - 1)] * (n - 1)


def _augmentations(resolved: ResolvedWorkflow) -> list[Any]:
    preset = resolved.train.augmentation.preset
    if preset == "none":
        return []
    dims = resolved.spatial_dims
    keys = [IMAGE, LABEL]
    strength = {"light": 0.5, "default": 1.0, "heavy": 1.5}[preset]
    rotate = np.radians(15.0 * strength)
    flip_axes = resolved.train.augmentation.flip_axes
    ops: list[Any] = [mt.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in flip_axes]
    if preset != "light":
        ops.insert(
            0,
            mt.RandAffined(
                keys,
                prob=0.2 * strength,
                rotate_range=[rotate] * (1 if dims == 2 else 3),
                scale_range=[0.15 * strength] * dims,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
        )
    ops += [
        mt.RandGaussianNoised(IMAGE, prob=0.1 * strength, std=0.1),
        mt.RandScaleIntensityd(IMAGE, factors=0.25, prob=0.15 * strength),
        mt.RandAdjustContrastd(IMAGE, prob=0.15 * strength, gamma=(0.7, 1.5)),
    ]
    if preset != "light":
        ops.append(
            mt.RandGaussianSmoothd(
                IMAGE,
                prob=0.1 * strength,
                sigma_x=(0.5, 1.0),
                sigma_y=(0.5, 1.0),
                sigma_z=(0.5, 1.0),
            )
        )
    return ops


def patch_transforms(resolved: ResolvedWorkflow) -> mt.Compose:
    """Random training transforms applied to one cached, preprocessed case -> one patch."""
    keys = [IMAGE, LABEL]
    size = sample_size(resolved)
    ops: list[Any] = [
        mt.SpatialPadd(keys, spatial_size=size),
        mt.RandCropByLabelClassesd(
            keys,
            label_key=LABEL,
            spatial_size=size,
            ratios=class_ratios(resolved),
            num_classes=resolved.num_classes,
            num_samples=1,
            indices_key=INDICES,
            warn=False,
        ),
    ]
    if resolved.spatial_dims == 2:
        ops.append(mt.SqueezeDimd(keys, dim=1 + resolved.slice_axis))
    ops += _augmentations(resolved)
    ops.append(mt.EnsureTyped(keys, track_meta=False))
    return mt.Compose(ops)
