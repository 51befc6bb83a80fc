"""Stacks of 2D images (PNG/TIFF B-scans or slices) with a JSON spacing sidecar.

A stack is a folder of same-sized grayscale images plus ``spacing.json``. The sidecar gives the
geometry that image files cannot carry::

    {
      "schema_version": 1,
      "pixel_spacing_mm": [0.0039, 0.011],          # [row (axial/depth), column (lateral)]
      "slice_spacing_mm": 0.12,                     # distance between consecutive images
      "files": ["bscan_0000.png", ...],             # optional; default: sorted *.png/*.tif(f)
      "image_orientation_patient": [1,0,0, 0,1,0],  # optional, DICOM convention (row dir, col dir)
      "first_position_lps_mm": [0, 0, 0],           # optional, centre of pixel (0, 0) of image 0
      "slice_direction_lps": [0, 0, 1],             # optional; default row dir x col dir
      "laterality": "OD", "patient_id": "...", "study_date": "YYYYMMDD", "modality": "OPT"
    }

Images are read as ``(rows, columns)`` and stacked to the medseg layout ``(X, Y, Z)`` =
(column, row, image index), like a DICOM series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medseg.errors import ConfigError, DataError
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.geometry import dicom_affine_lps, lps_to_ras_affine, ras_to_lps_affine, slice_normal
from medseg.io.volume import Volume
from medseg.types import PathLike

SIDECAR_NAME = "spacing.json"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


class StackSidecar(BaseModel):
    """Schema of ``spacing.json`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    pixel_spacing_mm: tuple[float, float] = Field(description="[row spacing, column spacing] mm")
    slice_spacing_mm: float = Field(gt=0)
    files: list[str] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] = (1, 0, 0, 0, 1, 0)
    first_position_lps_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    slice_direction_lps: tuple[float, float, float] | None = None
    laterality: Literal["OD", "OS"] | None = None
    patient_id: str | None = None
    study_date: str | None = None
    modality: str | None = None


def is_image_stack(folder: PathLike) -> bool:
    """Whether ``folder`` holds a ``spacing.json`` sidecar."""
    return (Path(folder) / SIDECAR_NAME).is_file()


def load_sidecar(folder: PathLike) -> StackSidecar:
    """Read and validate ``spacing.json``; a bad field raises :class:`ConfigError` naming it."""
    path = Path(folder) / SIDECAR_NAME
    try:
        return StackSidecar.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataError(
            f"image stack has no {SIDECAR_NAME}",
            path=folder,
            hint="add a sidecar with pixel_spacing_mm and slice_spacing_mm",
        ) from err
    except ValidationError as err:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid {SIDECAR_NAME}: {fields}", path=path) from err


def stack_files(folder: PathLike, sidecar: StackSidecar) -> list[Path]:
    """The stack's image files in slice order."""
    root = Path(folder)
    if sidecar.files is not None:
        return [root / name for name in sidecar.files]
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def stack_affine_lps(sidecar: StackSidecar) -> np.ndarray:
    """Voxel (column, row, image) -> LPS mm affine described by a sidecar."""
    direction = (
        np.asarray(sidecar.slice_direction_lps, dtype=np.float64)
        if sidecar.slice_direction_lps is not None
        else slice_normal(sidecar.image_orientation_patient)
    )
    direction = direction / np.linalg.norm(direction)
    return dicom_affine_lps(
        sidecar.image_orientation_patient,
        sidecar.first_position_lps_mm,
        sidecar.pixel_spacing_mm,
        direction * sidecar.slice_spacing_mm,
    )


def read_image_stack(folder: PathLike) -> Volume:
    """Read a PNG/TIFF stack with its sidecar into a :class:`Volume` ``(X, Y, Z)``.

    Raises:
        DataError: missing sidecar, no images, unreadable or differently sized images.
    """
    from PIL import Image

    sidecar = load_sidecar(folder)
    files = stack_files(folder, sidecar)
    if not files:
        raise DataError("image stack holds no PNG/TIFF files", path=folder)
    slices: list[np.ndarray] = []
    for path in files:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read image: {err}", path=path) from err
        if arr.ndim == 3:  # RGB(A) exports of grayscale scans: keep one channel
            arr = arr[..., 0]
        if slices and arr.shape != slices[0].shape:
            raise DataError(
                f"image size {arr.shape} differs from the first image's {slices[0].shape}",
                path=path,
            )
        slices.append(arr)
    array = np.stack([s.T for s in slices], axis=2)
    meta = {
        "source": str(folder),
        "format": "png",
        "laterality": sidecar.laterality,
        "patient_id": sidecar.patient_id,
        "study_date": sidecar.study_date,
        "modality": sidecar.modality,
    }
    return Volume(array, lps_to_ras_affine(stack_affine_lps(sidecar)), meta)


def write_image_stack(
    volume: Volume,
    folder: PathLike,
    *,
    prefix: str = "bscan",
    laterality: Literal["OD", "OS"] | None = None,
    patient_id: str | None = None,
    study_date: str | None = None,
    modality: str | None = None,
) -> Path:
    """Write a uint8/uint16 volume as one PNG per slice plus ``spacing.json`` (atomic per file).

    The volume's affine must have axis-aligned in-plane columns (no shear); its geometry is stored
    fully in the sidecar so the stack reads back on the same world grid.
    """
    from PIL import Image

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    lps = ras_to_lps_affine(volume.affine)
    col_sp, row_sp, slice_sp = volume.spacing
    names = []
    for k in range(volume.shape[2]):
        name = f"{prefix}_{k:04d}.png"
        with atomic_path(root / name) as tmp:
            Image.fromarray(np.ascontiguousarray(volume.array[:, :, k].T)).save(tmp, format="PNG")
        names.append(name)
    sidecar = StackSidecar(
        pixel_spacing_mm=(row_sp, col_sp),
        slice_spacing_mm=slice_sp,
        files=names,
        image_orientation_patient=(*(lps[:3, 0] / col_sp), *(lps[:3, 1] / row_sp)),
        first_position_lps_mm=tuple(lps[:3, 3]),
        slice_direction_lps=tuple(lps[:3, 2] / slice_sp),
        laterality=laterality,
        patient_id=patient_id,
        study_date=study_date,
        modality=modality,
    )
    write_text_atomic(root / SIDECAR_NAME, sidecar.model_dump_json(indent=2) + "\n")
    return root
