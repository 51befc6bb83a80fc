"""SimpleITK-backed formats (NRRD, MHA/MHD, and anything else ITK reads) <-> Volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.io.geometry import lps_to_ras_affine, ras_to_lps_affine
from medseg.io.volume import Volume
from medseg.types import PathLike

SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def is_sitk_file(path: PathLike) -> bool:
    """Whether ``path`` has an extension read through SimpleITK."""
    return Path(path).name.lower().endswith(SITK_SUFFIXES)


def from_sitk(image: Any, meta: dict[str, Any] | None = None) -> Volume:
    """SimpleITK image (LPS, array ``(Z, Y, X)``) -> :class:`Volume` (RAS, array ``(X, Y, Z)``)."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(
            f"expected a 3D single-component image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} components"
        )
    import SimpleITK as sitk

    array = np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)))
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return Volume(array, lps_to_ras_affine(affine), dict(meta or {}))


def to_sitk(volume: Volume) -> Any:
    """:class:`Volume` -> SimpleITK image (direction must be orthonormal: no shear)."""
    import SimpleITK as sitk

    lps = ras_to_lps_affine(volume.affine)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(volume.array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing).ravel()))
    return image


def read_sitk(path: PathLike) -> Volume:
    """Read a NRRD / MHA / MHD (or other ITK) file."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise DataError(
            f"cannot read image: {str(err).strip().splitlines()[-1]}", path=path
        ) from err
    return from_sitk(image, {"source": str(path), "format": Path(path).suffix.lstrip(".").lower()})


def write_sitk(volume: Volume, path: PathLike) -> Path:
    """Write through SimpleITK atomically (format from the extension)."""
    import SimpleITK as sitk

    target = Path(path)
    with atomic_path(target) as tmp:
        sitk.WriteImage(to_sitk(volume), str(tmp), useCompression=True)
    return target
