"""NIfTI reading and writing (nibabel), always with the RAS affine in mm."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.io.volume import Volume
from medseg.types import PathLike

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: PathLike) -> bool:
    """Whether ``path`` names a NIfTI file by its extension."""
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def read_nifti(path: PathLike) -> Volume:
    """Read a 3D NIfTI image or label map.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        Volume with the array in the file's voxel order ``(X, Y, Z)`` (scaled by ``scl_slope`` /
        ``scl_inter`` when set) and the file's RAS affine (sform, else qform). A trailing singleton
        4th dimension is dropped.

    Raises:
        DataError: the file cannot be read or is not 3D.
    """
    import nibabel as nib

    try:
        img = cast(Any, nib.load(str(path)))  # a spatial image: has dataobj and affine
        array = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise DataError(f"cannot read NIfTI file: {err}", path=path) from err
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(
            f"expected a 3D NIfTI volume, got shape {array.shape}",
            path=path,
            hint="multi-channel images are given as one file per channel in the manifest",
        )
    meta: dict[str, Any] = {"source": str(path), "format": "nifti"}
    return Volume(np.asarray(array), np.asarray(img.affine, dtype=np.float64), meta)


def write_nifti(
    volume: Volume,
    path: PathLike,
    *,
    dtype: npt.DTypeLike | None = None,
    description: str | None = None,
) -> Path:
    """Write ``volume`` to a NIfTI file atomically (temporary name, then rename).

    Both sform and qform are set to the volume's affine (code 1, scanner), units mm.

    Args:
        volume: the image or label map.
        path: target ``.nii`` / ``.nii.gz`` path.
        dtype: on-disk dtype; defaults to the array's dtype.
        description: header ``descrip`` text (ASCII, cut to 80 characters).
    """
    import nibabel as nib

    array = volume.array if dtype is None else volume.array.astype(dtype, copy=False)
    img = nib.Nifti1Image(array, volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:80]
    target = Path(path)
    with atomic_path(target) as tmp:
        nib.save(img, str(tmp))
    return target
