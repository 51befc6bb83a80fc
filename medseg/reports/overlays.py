"""Lesion overlay figures drawn directly with Pillow (fast: no plotting library per figure).

CT: axial (at the RECIST slice), coronal and sagittal views through a lesion, cropped around it,
shown with their physical aspect ratio (superior up). OCT: the B-scan where a fluid pocket is
widest. Both show outlines of every lesion class and the lesion's long (solid) and short (dashed)
axes in yellow.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.io.geometry import ras_to_lps_affine
from medseg.io.volume import Volume
from medseg.reports.figures import FigureImage, colour_of, display_range
from medseg.reports.schema import LesionRecord

PANEL_HEIGHT_PX = 220
OCT_WIDTH_PX = 640
OCT_DEPTH_MM = 1.2
MARGIN_MM = 20.0
_YELLOW = (255, 225, 25)
Segment = tuple[tuple[float, float], tuple[float, float], bool]
"""((i0, j0), (i1, j1), dashed) in the plane's voxel indices."""


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[n : n + 2], 16) for n in (1, 3, 5))  # type: ignore[return-value]


def _outline(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    padded = np.pad(mask, 1)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]) & mask
    return mask & ~inner


def _dashed(draw: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    steps = max(int(length // 5), 1)
    for n in range(0, steps, 2):
        a, b = n / steps, min((n + 1) / steps, 1.0)
        draw.line([(start[0] + a * (end[0] - start[0]), start[1] + a * (end[1] - start[1])),
                   (start[0] + b * (end[0] - start[0]), start[1] + b * (end[1] - start[1]))],
                  fill=_YELLOW, width=2)  # fmt: skip


def render_plane(
    image: npt.NDArray[Any], labels: npt.NDArray[Any], *, classes: Mapping[int, str],
    window: tuple[float, float], size_px: tuple[int, int], segments: Sequence[Segment] = (),
    flip_vertical: bool = False,
) -> Any:  # fmt: skip
    """One ``(columns, rows)`` plane as an RGB PIL image of ``size_px`` (width, height).

    The plane is scaled with nearest-neighbour sampling; class outlines are drawn at display
    resolution; ``segments`` are given in the plane's voxel indices (pixel centres).
    """
    from PIL import Image, ImageDraw

    width, height = size_px
    lo, hi = window
    grey = np.clip((image.T.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255
    rows = (np.arange(height) * image.shape[1] / height).astype(int)
    cols = (np.arange(width) * image.shape[0] / width).astype(int)
    rgb = np.repeat(grey.astype(np.uint8)[rows][:, cols, None], 3, axis=2)
    plane = labels.T[rows][:, cols]
    for value in classes:
        rgb[_outline(plane == value)] = _rgb(colour_of(value))
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    sx, sy = width / image.shape[0], height / image.shape[1]
    for (i0, j0), (i1, j1), dashed in segments:
        start, end = ((i0 + 0.5) * sx, (j0 + 0.5) * sy), ((i1 + 0.5) * sx, (j1 + 0.5) * sy)
        if dashed:
            _dashed(draw, start, end)
        else:
            draw.line([start, end], fill=_YELLOW, width=2)
    return picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM) if flip_vertical else picture


def _png(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _axes(lesion: LesionRecord) -> list[tuple[Sequence[float], Sequence[float], bool]]:
    """(start, end, dashed) voxel end points of the long (solid) and short (dashed) axes."""
    (a, b), (c, d) = lesion.long_axis_voxel, lesion.short_axis_voxel
    return [(a, b, False), (c, d, True)]


def _crop(centre: float, half: float, size: int) -> slice:
    return slice(max(int(centre - half), 0), min(int(np.ceil(centre + half)) + 1, size))


def _side_by_side(panels: Sequence[Any], names: Sequence[str]) -> Any:
    from PIL import Image, ImageDraw

    gap = 6
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, PANEL_HEIGHT_PX), "white")
    x = 0
    draw = ImageDraw.Draw(canvas)
    for panel, name in zip(panels, names):
        canvas.paste(panel, (x, 0))
        draw.text((x + 4, 3), name, fill=_YELLOW)
        x += panel.width + gap
    return canvas


def ct_lesion_figure(
    image: Volume | None, labels: Volume, lesion: LesionRecord, classes: Mapping[int, str],
    modality: str | None,
) -> FigureImage:  # fmt: skip
    """Axial (at the RECIST slice), coronal and sagittal views through a lesion's centroid."""
    spacing = np.asarray(labels.spacing)
    volume = image.array if image is not None else np.zeros(labels.shape, np.float32)
    lo, hi = np.asarray(lesion.bbox_voxel_min), np.asarray(lesion.bbox_voxel_max)
    half = np.maximum((hi - lo + 1) * 1.0, MARGIN_MM / spacing)
    crop = [_crop(c, h, n) for c, h, n in zip((lo + hi) / 2, half, labels.shape)]
    centre = np.rint(lesion.centroid_voxel).astype(int)
    window = display_range(volume[tuple(crop)], modality)
    up = bool(ras_to_lps_affine(labels.affine)[2, 2] > 0)  # slice index grows superiorly
    x0, y0 = crop[0].start, crop[1].start
    axes = [((a[0] - x0, a[1] - y0), (b[0] - x0, b[1] - y0), dash) for a, b, dash in _axes(lesion)]
    views: list[tuple[Any, tuple[int, int], Sequence[Segment], bool]] = [
        (np.s_[crop[0], crop[1], lesion.inplane_slice], (0, 1), axes, False),
        (np.s_[crop[0], centre[1], crop[2]], (0, 2), (), up),
        (np.s_[centre[0], crop[1], crop[2]], (1, 2), (), up),
    ]
    names = ["axial", "coronal", "sagittal"]
    flat = [a for a, n in enumerate(labels.shape) if n == 1]  # one-slice volume: its plane only
    keep = [n for n, view in enumerate(views) if not set(view[1]) & set(flat)] or [0]
    panels = []
    for index, (u, v), segments, flip in (views[n] for n in keep):
        plane, mask = volume[index], labels.array[index]
        aspect = plane.shape[0] * spacing[u] / (plane.shape[1] * spacing[v])
        size = (max(int(PANEL_HEIGHT_PX * aspect), 8), PANEL_HEIGHT_PX)
        panels.append(render_plane(plane, mask, classes=classes, window=window, size_px=size,
                                   segments=segments, flip_vertical=flip))  # fmt: skip
    shown = [names[n] for n in keep]
    parts = [f"axial (slice {lesion.inplane_slice})" if n == 0 else names[n] for n in keep]
    text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    caption = (
        f"{text[0].upper()}{text[1:]} view{'s' if len(parts) > 1 else ''}. {lesion.label_name} "
        f"{lesion.lesion_id}: {lesion.volume_mm3:.0f} mm³, long axis {lesion.inplane_long_mm:.1f}"
        f" x {lesion.inplane_short_mm:.1f} mm, longest 3D {lesion.longest_diameter_mm:.1f} mm."
    )
    figure = _side_by_side(panels, shown)
    return FigureImage(f"Lesion {lesion.lesion_id} ({lesion.label_name})", caption, _png(figure))


def oct_lesion_figure(
    image: Volume | None, labels: Volume, lesion: LesionRecord, classes: Mapping[int, str]
) -> FigureImage:
    """The B-scan where a fluid pocket is widest, 1.2 mm deep around it (depth stretched)."""
    k = lesion.inplane_slice
    plane = image.array[:, :, k] if image is not None else np.zeros(labels.shape[:2])
    rows = _crop(lesion.centroid_voxel[1], OCT_DEPTH_MM / 2 / labels.spacing[1], plane.shape[1])
    segments = [((a[0], a[1] - rows.start), (b[0], b[1] - rows.start), dashed)
                for a, b, dashed in _axes(lesion)]  # fmt: skip
    size = (OCT_WIDTH_PX, int(0.4 * OCT_WIDTH_PX))
    window = display_range(plane, "OPT")
    picture = render_plane(plane[:, rows], labels.array[:, rows, k], classes=classes,
                           window=window, size_px=size, segments=segments)  # fmt: skip
    volume = f"{lesion.volume_nl:.1f} nL" if lesion.volume_nl is not None else ""
    where = f", subfield {lesion.etdrs_subfield}" if lesion.etdrs_subfield else ""
    caption = (
        f"{lesion.label_name} {lesion.lesion_id} on B-scan {k} (depth stretched): {volume}, "
        f"B-scans {lesion.slice_first}-{lesion.slice_last}, width {lesion.inplane_long_mm:.2f} mm"
        f"{where}."
    )
    return FigureImage(f"Lesion {lesion.lesion_id} ({lesion.label_name})", caption, _png(picture))
