"""Plain 2D image files (PNG, JPEG, TIFF, BMP, GIF) as scans and label maps.

An image of ``rows x columns`` pixels reads as a one-slice :class:`Volume` ``(X, Y, 1)`` =
(column, row, 1), like a single DICOM slice (multi-page TIFFs and animated PNGs: one slice per
page). The geometry is a plain pixel grid: row direction +x, column direction +y (LPS), origin 0.

**Pixel values.** Greyscale (8/16-bit, float) as stored; bilevel as 0/1; palette images through
their palette when it is grey, else as palette indices (label maps); colour images whose three
components are equal everywhere as grey, others as ITU-R 601 luma, or one component when asked
(:class:`ImageFileRef` ``component`` 0/1/2 = red/green/blue: an RGB data set has three channels).

**Pixel spacing**, first found of:

1. ``pixel_spacing_mm`` given by the caller (a manifest's :class:`ImageFileRef`, ``--spacing``);
2. a sidecar ``<name>.json`` beside the file with ``"pixel_spacing_mm": [row, column]`` (or one
   number) and optionally ``"slice_spacing_mm"`` (pages of a multi-page file);
3. the file's own resolution: TIFF X/YResolution with ResolutionUnit inch or centimetre, PNG
   ``pHYs`` in pixels per metre, JPEG JFIF/EXIF density, BMP pixels per metre. 72 and 96 dpi
   are the display defaults most programs write without measuring anything: they are ignored;
4. none: 1 mm, and ``meta["spacing_source"] == "unknown"`` (``manifest build`` warns).

The slice spacing of a one-slice image is 1 mm (mm^3 figures are then mm^2 x 1 mm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from medseg.errors import DataError
from medseg.io.geometry import lps_to_ras_affine
from medseg.io.volume import Volume
from medseg.types import PathLike

IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
RGB_CHANNELS = ("red", "green", "blue")
DISPLAY_DPI = (72.0, 96.0)
MM_PER_INCH = 25.4
SpacingSource = Literal["caller", "sidecar", "file", "unknown"]


class ImageFileRef(BaseModel):
    """A 2D image file as manifests store it when its path alone does not say enough.

    Attributes:
        path: the file (relative to the manifest's data root, or absolute).
        component: 0, 1 or 2 reads the red, green or blue component; ``None`` reads grey.
        pixel_spacing_mm: ``[row, column]`` spacing in mm, overriding the file's own.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    component: int | None = Field(default=None, ge=0, le=2)
    pixel_spacing_mm: tuple[float, float] | None = None


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` names a PNG/JPEG/TIFF/BMP/GIF file (by extension)."""
    return Path(path).suffix.lower() in IMAGE_FILE_SUFFIXES


@dataclass(frozen=True)
class ImagePixels:
    """Decoded pages of an image file.

    Attributes:
        pages: ``(pages, rows, columns)`` grey or ``(pages, rows, columns, 3)`` colour.
        kind: ``grey``, ``colour`` (components differ) or ``palette`` (indices of a colour palette).
        dpi: ``(x, y)`` resolution the file states, if any (display defaults included).
        format: ``png``, ``jpeg``, ``tiff`` or ``bmp``.
    """

    pages: npt.NDArray[Any]
    kind: Literal["grey", "colour", "palette"]
    dpi: tuple[float, float] | None
    format: str


def _format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "tif": "tiff"}.get(suffix, suffix)


def _page_array(img: Any) -> tuple[npt.NDArray[Any], str]:
    """One PIL page as ``(rows, columns[, 3])`` and its kind."""
    mode = img.mode
    if mode == "P":
        palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
        indices = np.asarray(img)
        if palette.size and np.all(palette == palette[:, :1]):  # grey ramp: the grey it shows
            return palette[indices, 0].astype(np.uint8), "grey"
        return indices, "palette"
    if mode == "1":
        return np.asarray(img, dtype=np.uint8), "grey"
    if mode in ("LA", "PA"):
        img = img.convert(mode[0])
        return _page_array(img)
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX"):
        rgb = np.asarray(img.convert("RGB") if mode != "RGB" else img)
        equal = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(
            rgb[..., 0], rgb[..., 2]
        )
        return (rgb[..., 0], "grey") if equal else (rgb, "colour")
    return np.asarray(img), "grey"


def _read_with_pil(path: Path) -> ImagePixels:
    from PIL import Image, ImageSequence

    with Image.open(path) as img:
        dpi = img.info.get("dpi")
        pages, kinds = [], set()
        for page in ImageSequence.Iterator(img):
            array, kind = _page_array(page)
            pages.append(array)
            kinds.add(kind)
    return _combine(path, pages, kinds, dpi)


def _combine(path: Path, pages: list[npt.NDArray[Any]], kinds: set[str], dpi: Any) -> ImagePixels:
    if any(p.shape[:2] != pages[0].shape[:2] for p in pages):
        raise DataError("the pages of the image differ in size", path=path)
    kind = "colour" if "colour" in kinds else "palette" if "palette" in kinds else "grey"
    if kind == "colour":
        pages = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in pages]
    resolution = None
    if dpi is not None:
        resolution = (float(dpi[0]), float(dpi[1]))
    return ImagePixels(np.stack(pages), kind, resolution, _format(path))  # type: ignore[arg-type]


def _tiff_dpi(page: Any) -> tuple[float, float] | None:
    """``(x, y)`` dpi from a TIFF page's resolution tags (None without them or a unit)."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    scale = {2: 1.0, 3: 2.54}.get(unit)
    x, y = (tags[k].value for k in ("XResolution", "YResolution"))
    if scale is None or not x[1] or not y[1]:
        return None
    return (x[0] / x[1] * scale, y[0] / y[1] * scale)


def _read_with_tifffile(path: Path) -> ImagePixels:
    """TIFFs through tifffile (16-bit colour, float, tiled and compressed pages, palettes)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        array = tif.series[0].asarray()
        photometric = int(getattr(page, "photometric", 1))
        colormap = getattr(page, "colormap", None)
        dpi = _tiff_dpi(page)
    if photometric == 2:  # RGB(A): (..., rows, columns, samples)
        pages = array.reshape((-1, *array.shape[-3:]))[..., :3]
        if all(np.array_equal(pages[..., 0], pages[..., c]) for c in (1, 2)):
            return _combine(path, list(pages[..., 0]), {"grey"}, dpi)
        return _combine(path, list(pages), {"colour"}, dpi)
    pages = array.reshape((-1, *array.shape[-2:]))
    if photometric == 3 and colormap is not None:  # palette
        ramp = np.asarray(colormap)
        if np.all(ramp == ramp[:1]):
            return _combine(path, list((ramp[0][pages] >> 8).astype(np.uint8)), {"grey"}, dpi)
        return _combine(path, list(pages), {"palette"}, dpi)
    if photometric == 0:  # min-is-white: invert so that bright means high signal
        pages = np.iinfo(pages.dtype).max - pages if pages.dtype.kind == "u" else -pages
    return _combine(path, list(pages), {"grey"}, dpi)


def read_pixels(path: PathLike) -> ImagePixels:
    """Decode every page of a PNG/JPEG/BMP/GIF (PIL) or TIFF (tifffile, as PIL truncates 16-bit
    colour; PIL for the compressions tifffile needs ``imagecodecs`` for).

    Raises:
        DataError: missing, truncated or undecodable file.
    """
    location = Path(path)
    if not location.is_file():
        raise DataError("image file does not exist", path=location)
    tiff_error = None
    if _format(location) == "tiff":
        try:
            return _read_with_tifffile(location)
        except DataError:
            raise
        except Exception as err:  # e.g. LZW without imagecodecs: PIL decodes those
            tiff_error = err
    try:
        return _read_with_pil(location)
    except (OSError, ValueError, SyntaxError) as err:
        reason = f"{tiff_error}; {err}" if tiff_error is not None else str(err)
        raise DataError(
            f"cannot read image: {reason}",
            path=location,
            hint="for compressed TIFFs: pip install imagecodecs" if tiff_error else None,
        ) from err


def sidecar_path(path: PathLike) -> Path:
    """``<name>.json`` beside an image file."""
    location = Path(path)
    return location.with_name(location.name[: -len(location.suffix)] + ".json")


def read_image_sidecar(path: PathLike) -> dict[str, Any]:
    """The JSON sidecar of an image file (empty if none).

    Raises:
        DataError: the sidecar exists but is not a JSON object.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable JSON sidecar: {err}", path=side) from err
    if not isinstance(data, dict):
        raise DataError("the JSON sidecar is not an object", path=side)
    return data


def _pair(value: Any, what: str, path: Path) -> tuple[float, float]:
    """``[row, column]`` from one number or two positive numbers."""
    values = [value, value] if isinstance(value, (int, float)) else list(value)
    try:
        pair = (float(values[0]), float(values[1]))
    except (TypeError, ValueError, IndexError) as err:
        raise DataError(
            f"{what} must be a number or [row, column], got {value!r}", path=path
        ) from err
    if len(values) != 2 or min(pair) <= 0:
        raise DataError(f"{what} must be positive [row, column], got {value!r}", path=path)
    return pair


def file_pixel_spacing(dpi: tuple[float, float] | None) -> tuple[float, float] | None:
    """``[row, column]`` mm from a stated ``(x, y)`` dpi; display defaults (72/96) give None."""
    if dpi is None or min(dpi) <= 1.0:
        return None
    if all(round(d) in DISPLAY_DPI and abs(d - round(d)) < 0.05 for d in dpi):
        return None
    return (MM_PER_INCH / dpi[1], MM_PER_INCH / dpi[0])


def resolve_spacing(
    path: Path, pixels: ImagePixels, pixel_spacing_mm: tuple[float, float] | None
) -> tuple[tuple[float, float], float, SpacingSource]:
    """``([row, column] mm, slice mm, source)`` by the rules of the module docstring."""
    sidecar = read_image_sidecar(path)
    slice_mm = float(sidecar.get("slice_spacing_mm", 1.0))
    if pixel_spacing_mm is not None:
        return _pair(pixel_spacing_mm, "pixel_spacing_mm", path), slice_mm, "caller"
    if "pixel_spacing_mm" in sidecar:
        return _pair(sidecar["pixel_spacing_mm"], "pixel_spacing_mm", path), slice_mm, "sidecar"
    found = file_pixel_spacing(pixels.dpi)
    if found is not None:
        return found, slice_mm, "file"
    return (1.0, 1.0), slice_mm, "unknown"


def _grey(pixels: ImagePixels, component: int | None) -> npt.NDArray[Any]:
    """``(pages, rows, columns)``: one component, or grey (luma of a colour image)."""
    pages = pixels.pages
    if pages.ndim == 3:
        return pages
    if component is not None:
        return pages[..., component]
    weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return np.tensordot(pages.astype(np.float32), weights, axes=([3], [0]))


def image_affine(spacing_mm: tuple[float, float], slice_mm: float) -> npt.NDArray[np.float64]:
    """Voxel ``(column, row, page)`` -> RAS affine of a plain pixel grid (LPS +x, +y, +z)."""
    row_mm, column_mm = spacing_mm
    return lps_to_ras_affine(np.diag([column_mm, row_mm, slice_mm, 1.0]))


def read_image_file(
    path: PathLike,
    *,
    component: int | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> Volume:
    """Read a 2D image file (all pages) as a :class:`Volume` ``(columns, rows, pages)``.

    Args:
        path: PNG, JPEG, TIFF or BMP file.
        component: 0/1/2 for the red/green/blue component of a colour image (a grey image gives
            its grey for any component); ``None`` for grey (luma of colour images).
        pixel_spacing_mm: ``[row, column]`` mm overriding the sidecar and the file.

    Returns:
        The volume; ``meta`` holds ``format``, ``colour`` (the file is true colour),
        ``palette``, ``spacing_source`` and ``source``.

    Raises:
        DataError: unreadable file or sidecar, bad spacing.
    """
    location = Path(path)
    pixels = read_pixels(location)
    spacing, slice_mm, source = resolve_spacing(location, pixels, pixel_spacing_mm)
    array = np.ascontiguousarray(np.transpose(_grey(pixels, component), (2, 1, 0)))
    sidecar = read_image_sidecar(location)
    meta = {
        "source": str(location),
        "format": pixels.format,
        "colour": pixels.kind == "colour",
        "palette": pixels.kind == "palette",
        "spacing_source": source,
        **{
            k: str(sidecar[k])
            for k in ("patient_id", "study_date", "laterality", "modality")
            if sidecar.get(k) is not None
        },
    }
    return Volume(array, image_affine(spacing, slice_mm), meta)


def read_image_ref(ref: ImageFileRef, root: Path | None) -> Volume:
    """Read an :class:`ImageFileRef` (its path relative to ``root`` unless absolute)."""
    path = Path(ref.path)
    if root is not None and not path.is_absolute():
        path = root / path
    return read_image_file(path, component=ref.component, pixel_spacing_mm=ref.pixel_spacing_mm)
