"""``LoadVolumed``: MONAI dictionary transform over the one reader path (:func:`read_volume`).

Emits a channel-first :class:`monai.data.MetaTensor` ``[1, X, Y, Z]`` whose ``affine`` is the
volume's RAS affine (mm), so MONAI's Orientation/Spacing/Invertd work on exactly the geometry that
``medseg.io`` reads, and training, inference and evaluation read scans the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.types import PathLike

# metadata worth carrying through batches (lists of files/UIDs stay in medseg.io)
_META_KEYS = ("format", "modality", "laterality", "study_date", "series_uid", "spacing_source")


def volume_to_metatensor(
    volume: Volume, *, dtype: npt.DTypeLike | None = None, source: str = ""
) -> MetaTensor:
    """Wrap a :class:`Volume` as a channel-first MetaTensor ``[1, X, Y, Z]`` (RAS affine)."""
    array = volume.array if dtype is None else volume.array.astype(dtype, copy=False)
    affine = torch.as_tensor(volume.affine, dtype=torch.float64)
    meta: dict[str, Any] = {k: volume.meta[k] for k in _META_KEYS if volume.meta.get(k) is not None}
    meta.update(
        {
            "filename_or_obj": source or str(volume.meta.get("source", "")),
            "original_affine": affine.clone(),
            "spatial_shape": np.asarray(volume.shape),
            "original_channel_dim": "no_channel",
            "space": "RAS",
        }
    )
    return MetaTensor(torch.as_tensor(np.ascontiguousarray(array))[None], affine=affine, meta=meta)


class LoadVolumed(MapTransform):
    """Read each key's reference (path or DICOM series reference) with :func:`read_volume`.

    Args:
        keys: dictionary keys holding references (e.g. ``("image", "label")``).
        root: folder relative references are resolved against (a manifest's data root).
        dtypes: on-load dtype per key (e.g. ``{"image": np.float32, "label": np.uint8}``); keys
            not listed keep the file's dtype.
        allow_missing_keys: skip keys absent from the dictionary.
    """

    def __init__(
        self,
        keys: KeysCollection,
        *,
        root: PathLike | None = None,
        dtypes: Mapping[Hashable, npt.DTypeLike] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.root = root
        self.dtypes = dict(dtypes or {})

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        for key in self.key_iterator(out):
            ref = out[key]
            volume = read_volume(ref, root=self.root)
            source = ref if isinstance(ref, str) else getattr(ref, "series_uid", "")
            source = getattr(ref, "path", source)
            out[key] = volume_to_metatensor(volume, dtype=self.dtypes.get(key), source=str(source))
        return out


class LabelOnImageGridd(MapTransform):
    """Put a label map read from a 2D image file (no geometry of its own) on its image's grid.

    A label whose metadata has ``spacing_source`` (set by :mod:`medseg.io.image_files`) takes the
    affine of ``image_key``; its spatial shape must equal the image's.

    Raises:
        GeometryError: the label image's size differs from the image's.
    """

    def __init__(self, label_key: str, image_key: str) -> None:
        super().__init__([label_key], allow_missing_keys=True)
        self.label_key, self.image_key = label_key, image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        label, image = out.get(self.label_key), out.get(self.image_key)
        if not isinstance(label, MetaTensor) or not isinstance(image, MetaTensor):
            return out
        if "spacing_source" not in label.meta:
            return out
        if tuple(label.shape[1:]) != tuple(image.shape[1:]):
            from medseg.errors import GeometryError

            raise GeometryError(
                f"label image size {tuple(label.shape[1:])} differs from the image's "
                f"{tuple(image.shape[1:])} (columns, rows, pages)",
                path=str(label.meta.get("filename_or_obj", "")),
            )
        meta = {k: v for k, v in label.meta.items() if k != "affine"}
        meta["original_affine"] = image.affine.clone()
        out[self.label_key] = MetaTensor(label.as_tensor(), affine=image.affine.clone(), meta=meta)
        return out


def metatensor_keys(data: Mapping[Hashable, Any], keys: Sequence[Hashable]) -> list[Hashable]:
    """The subset of ``keys`` present in ``data`` (helper for optional labels)."""
    return [k for k in keys if k in data]


def metatensor_like(data: torch.Tensor, like: MetaTensor) -> MetaTensor:
    """``data`` ``[C, *spatial]`` as a MetaTensor with ``like``'s affine and metadata.

    Copies ``like.meta`` without its ``affine`` entry (the affine is passed explicitly), so MONAI
    does not warn that the metadata's affine is overwritten; the applied transforms stay on
    ``like`` for ``Invertd``.
    """
    meta = {k: v for k, v in like.meta.items() if k != "affine"}
    return MetaTensor(data, affine=like.affine, meta=meta)
