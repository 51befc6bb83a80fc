"""Lesion overlay figures drawn directly with Pillow (fast: no plotting library per figure).

Every figure shows the lesion *cropped and enlarged* beside a *thumbnail of the whole plane* with
the crop marked, outlines of every class in its colour, the lesion's long (solid) and short
(dashed) axes in yellow, a scale bar and a colour legend.

CT: the whole axial slice at the RECIST slice, then axial, coronal and sagittal crops through the
lesion, shown with their physical aspect ratio in radiological orientation (patient right on the
left, anterior / superior up) with direction letters. OCT: the B-scan where a fluid pocket is
widest, enlarged around the pocket (depth stretched twice, as OCT viewers do), beside the whole
B-scan with its temporal / nasal ends named.

Images are drawn at :data:`~medseg.reports.figures.SCALE` pixels per CSS pixel (print resolution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.drawing import SCALE, colour_of, hex_of, legend_strip, pil_font, rgb
from medseg.io.geometry import ras_to_lps_affine
from medseg.io.volume import Volume
from medseg.reports.enface import subfield_title
from medseg.reports.figures import YELLOW, FigureImage, display_range, pil_figure
from medseg.reports.schema import LesionRecord

CT_PANEL_PX = 200 * SCALE
OCT_ZOOM_BOX_PX = (380 * SCALE, 250 * SCALE)
OCT_THUMB_WIDTH_PX = 360 * SCALE
OCT_DEPTH_STRETCH = 2.0
MARGIN_MM = 20.0
_GAP = 8 * SCALE
_HEADER = 20 * SCALE
_BAR_MM = (0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
"""LPS axis -> (letter of the negative direction, letter of the positive direction)."""
Segment = tuple[tuple[float, float], tuple[float, float], bool]
"""((i0, j0), (i1, j1), dashed) in the plane's voxel indices."""


def _thick_outline(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it, thickened to :data:`SCALE` pixels."""
    padded = np.pad(mask, 1)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]) & mask
    edge = mask & ~inner
    for _ in range(SCALE - 1):
        grown = np.pad(edge, 1)
        edge = edge | (grown[:-2, 1:-1] | grown[2:, 1:-1] | grown[1:-1, :-2] | grown[1:-1, 2:])
        edge &= mask
    return edge


def _dashed(draw: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    steps = max(int(length // (5 * SCALE)), 1)
    for n in range(0, steps, 2):
        a, b = n / steps, min((n + 1) / steps, 1.0)
        draw.line([(start[0] + a * (end[0] - start[0]), start[1] + a * (end[1] - start[1])),
                   (start[0] + b * (end[0] - start[0]), start[1] + b * (end[1] - start[1]))],
                  fill=YELLOW, width=2 * SCALE)  # fmt: skip


def render_plane(
    image: npt.NDArray[Any], labels: npt.NDArray[Any], *, classes: Mapping[int, str],
    window: tuple[float, float], size_px: tuple[int, int], segments: Sequence[Segment] = (),
    flip_vertical: bool = False, flip_horizontal: bool = False,
) -> Any:  # fmt: skip
    """One ``(columns, rows)`` plane as an RGB PIL image of ``size_px`` (width, height).

    The grey image is resampled bilinearly, the labels by nearest neighbour; class outlines are
    drawn at display resolution; ``segments`` are given in the plane's voxel indices (pixel
    centres). Flips apply after drawing.
    """
    from PIL import Image, ImageDraw

    width, height = size_px
    lo, hi = window
    grey = (np.clip((image.T.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(grey).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.repeat(np.asarray(picture)[:, :, None], 3, axis=2).copy()
    rows = (np.arange(height) * image.shape[1] / height).astype(int)
    cols = (np.arange(width) * image.shape[0] / width).astype(int)
    plane = labels.T[rows][:, cols]
    for value in classes:
        pixels[_thick_outline(plane == value)] = rgb(colour_of(value))
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    sx, sy = width / image.shape[0], height / image.shape[1]
    for (i0, j0), (i1, j1), dashed in segments:
        start, end = ((i0 + 0.5) * sx, (j0 + 0.5) * sy), ((i1 + 0.5) * sx, (j1 + 0.5) * sy)
        if dashed:
            _dashed(draw, start, end)
        else:
            draw.line([start, end], fill=YELLOW, width=2 * SCALE)
    if flip_vertical:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if flip_horizontal:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return picture


def _label(draw: Any, xy: tuple[float, float], text: str, anchor: str, size: float = 12) -> None:
    """Yellow text with a dark outline (legible on any grey level)."""
    draw.text(xy, text, fill=YELLOW, font=pil_font(size), anchor=anchor,
              stroke_width=SCALE, stroke_fill=(0, 0, 0))  # fmt: skip


def _scale_bar(picture: Any, px_per_mm: float) -> None:
    """A white bar of a round length (about a quarter of the width) in the bottom-left corner."""
    from PIL import ImageDraw

    target = picture.width / 4 / px_per_mm
    length_mm = max((b for b in _BAR_MM if b <= target), default=_BAR_MM[0])
    length = length_mm * px_per_mm
    draw = ImageDraw.Draw(picture)
    x, y = 8 * SCALE, picture.height - 10 * SCALE
    draw.rectangle([x - SCALE, y - 2 * SCALE, x + length + SCALE, y + 2 * SCALE], fill=(0, 0, 0))
    draw.line([(x, y), (x + length, y)], fill=(255, 255, 255), width=2 * SCALE)
    text = f"{length_mm * 1000:.0f} µm" if length_mm < 1 else f"{length_mm:g} mm"
    _label(draw, (x, y - 4 * SCALE), text, "ld", size=11)


@dataclass(frozen=True)
class _Panel:
    picture: Any
    header: str


def _compose(panels: Sequence[_Panel], legend: Sequence[tuple[str, str, Any]]) -> Any:
    """Panels side by side (top-aligned) under their headers, the legend strip below."""
    from PIL import Image, ImageDraw

    width = sum(p.picture.width for p in panels) + _GAP * (len(panels) - 1)
    height = max(p.picture.height for p in panels) + _HEADER
    strip = legend_strip(width, legend)
    canvas = Image.new("RGB", (width, height + strip.height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for panel in panels:
        canvas.paste(panel.picture, (x, _HEADER))
        draw.text((x + SCALE, _HEADER // 2), panel.header, fill=(30, 30, 30), font=pil_font(12),
                  anchor="lm")  # fmt: skip
        x += panel.picture.width + _GAP
    canvas.paste(strip, (0, height))
    return canvas


def _legend(classes: Mapping[int, str], shown: npt.NDArray[Any]) -> list[tuple[str, str, Any]]:
    present = set(np.unique(shown).tolist())
    entries: list[tuple[str, str, Any]] = [
        (colour_of(v), name, "box") for v, name in classes.items() if v in present
    ]
    yellow = hex_of(YELLOW)
    return [*entries, (yellow, "long axis", "line"), (yellow, "short axis", "dashed")]


def _axes(lesion: LesionRecord) -> list[tuple[Sequence[float], Sequence[float], bool]]:
    """(start, end, dashed) voxel end points of the long (solid) and short (dashed) axes."""
    (a, b), (c, d) = lesion.long_axis_voxel, lesion.short_axis_voxel
    return [(a, b, False), (c, d, True)]


def _crop(centre: float, half: float, size: int) -> slice:
    return slice(max(int(centre - half), 0), min(int(np.ceil(centre + half)) + 1, size))


def _letter(direction: npt.NDArray[np.float64]) -> str:
    """Patient direction letter (R/L, A/P, I/S) of the dominant LPS component of a vector."""
    axis = int(np.argmax(np.abs(direction)))
    return _LETTERS[axis][int(direction[axis] > 0)]


def _mark(picture: Any, box: tuple[float, float, float, float]) -> None:
    """A yellow rectangle ``(x0, y0, x1, y1)`` in image pixels."""
    from PIL import ImageDraw

    ImageDraw.Draw(picture).rectangle(box, outline=YELLOW, width=SCALE)


@dataclass(frozen=True)
class _View:
    """One CT plane: array index, in-plane axes (u right, v down) and where u/v should point."""

    index: Any
    u: int
    v: int
    right: int  # LPS axis that should grow to the right (+x = patient left)
    down: int  # LPS axis that should grow downward; sign below
    down_sign: float
    name: str


def _ct_views(crop: list[slice], centre: npt.NDArray[np.int64], k: int) -> list[_View]:
    return [
        _View(np.s_[crop[0], crop[1], k], 0, 1, 0, 1, 1.0, "axial"),
        _View(np.s_[crop[0], centre[1], crop[2]], 0, 2, 0, 2, -1.0, "coronal"),
        _View(np.s_[centre[0], crop[1], crop[2]], 1, 2, 1, 2, -1.0, "sagittal"),
    ]


def _ct_panel(
    volume: npt.NDArray[Any], labels: Volume, view: _View, *, classes: Mapping[int, str],
    window: tuple[float, float], height: int, segments: Sequence[Segment] = (),
) -> tuple[_Panel, float]:  # fmt: skip
    """One oriented CT plane with direction letters; also returns its pixels per mm (width)."""
    from PIL import ImageDraw

    lps = ras_to_lps_affine(labels.affine)[:3, :3]
    spacing = np.asarray(labels.spacing)
    plane, mask = volume[view.index], labels.array[view.index]
    u_dir, v_dir = lps[:, view.u], lps[:, view.v]
    flip_h = bool(u_dir[view.right] < 0)
    flip_v = bool(v_dir[view.down] * view.down_sign < 0)
    width_mm, height_mm = plane.shape[0] * spacing[view.u], plane.shape[1] * spacing[view.v]
    size = (max(int(height * width_mm / height_mm), 8 * SCALE), height)
    picture = render_plane(
        plane, mask, classes=classes, window=window, size_px=size, segments=segments,
        flip_vertical=flip_v, flip_horizontal=flip_h,
    )  # fmt: skip
    right = -u_dir if flip_h else u_dir
    down = -v_dir if flip_v else v_dir
    draw = ImageDraw.Draw(picture)
    w, h = picture.size
    _label(draw, (3 * SCALE, h / 2), _letter(-right), "lm")
    _label(draw, (w - 3 * SCALE, h / 2), _letter(right), "rm")
    _label(draw, (w / 2, 2 * SCALE), _letter(-down), "mt")
    _label(draw, (w / 2, h - 2 * SCALE), _letter(down), "mb")
    return _Panel(picture, view.name), size[0] / width_mm


def ct_lesion_figure(
    image: Volume | None, labels: Volume, lesion: LesionRecord, classes: Mapping[int, str],
    modality: str | None,
) -> FigureImage:  # fmt: skip
    """The whole axial slice (crop marked), then axial, coronal and sagittal crops of a lesion."""
    spacing = np.asarray(labels.spacing)
    volume = image.array if image is not None else np.zeros(labels.shape, np.float32)
    lo, hi = np.asarray(lesion.bbox_voxel_min), np.asarray(lesion.bbox_voxel_max)
    half = np.maximum((hi - lo + 1) * 1.0, MARGIN_MM / spacing)
    crop = [_crop(c, h, n) for c, h, n in zip((lo + hi) / 2, half, labels.shape)]
    centre = np.rint(lesion.centroid_voxel).astype(int)
    k = lesion.inplane_slice
    window = display_range(volume[tuple(crop)], modality)
    x0, y0 = crop[0].start, crop[1].start
    axes = [((a[0] - x0, a[1] - y0), (b[0] - x0, b[1] - y0), dash) for a, b, dash in _axes(lesion)]
    flat = {a for a, n in enumerate(labels.shape) if n == 1}  # one-slice volume: its plane only
    views = [v for v in _ct_views(crop, centre, k) if not {v.u, v.v} & flat]
    views = views or _ct_views(crop, centre, k)[:1]
    panels = []
    for view in views:
        panel, px_per_mm = _ct_panel(
            volume, labels, view, classes=classes, window=window, height=CT_PANEL_PX,
            segments=axes if view.name == "axial" else (),
        )  # fmt: skip
        if view is views[0]:
            _scale_bar(panel.picture, px_per_mm)
        panels.append(panel)
    if views[0].name == "axial":  # the whole axial slice first, the crop marked on it
        whole = _View(np.s_[:, :, k], 0, 1, 0, 1, 1.0, f"axial slice {k}")
        thumb, _ = _ct_panel(volume, labels, whole, classes=classes, window=window,
                             height=CT_PANEL_PX)  # fmt: skip
        _mark_crop(thumb.picture, labels, crop)
        panels.insert(0, thumb)
    caption = (
        f"{_view_names(views)} through {lesion.label_name} {lesion.lesion_id}: "
        f"{lesion.volume_mm3:.0f} mm³, long axis {lesion.inplane_long_mm:.1f} x "
        f"{lesion.inplane_short_mm:.1f} mm, longest 3D {lesion.longest_diameter_mm:.1f} mm. "
        "Radiological orientation (patient right on the left); slice indices 0-based."
    )
    picture = _compose(panels, _legend(classes, labels.array[tuple(crop)]))
    return pil_figure(f"Lesion {lesion.lesion_id} ({lesion.label_name})", caption, picture)


def _view_names(views: Sequence[_View]) -> str:
    """``Axial slice 15 (whole, crop marked), then axial, coronal and sagittal views`` etc."""
    names = [v.name for v in views]
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    axial = names[0] == "axial"
    lead = f"Axial slice {views[0].index[2]} (whole, crop marked), then " if axial else ""
    text = f"{lead}{listed} view{'s' if len(names) > 1 else ''}"
    return text[0].upper() + text[1:]


def _mark_crop(picture: Any, labels: Volume, crop: Sequence[slice]) -> None:
    """Mark the in-plane crop on a whole axial slice drawn by :func:`_ct_panel`."""
    lps = ras_to_lps_affine(labels.affine)[:3, :3]
    sx, sy = picture.width / labels.shape[0], picture.height / labels.shape[1]
    xs = sorted([crop[0].start * sx, crop[0].stop * sx])
    ys = sorted([crop[1].start * sy, crop[1].stop * sy])
    if lps[0, 0] < 0:
        xs = [picture.width - xs[1], picture.width - xs[0]]
    if lps[1, 1] < 0:
        ys = [picture.height - ys[1], picture.height - ys[0]]
    _mark(picture, (xs[0], ys[0], xs[1], ys[1]))


def _oct_crop(labels: Volume, lesion: LesionRecord) -> tuple[slice, slice]:
    """Lateral and depth index ranges around a fluid pocket, shaped like the zoom panel.

    The pocket plus a margin of its size on every side (at least 1 mm wide, so the retinal layers
    around it show), widened or deepened to the panel's aspect ratio (with the depth stretch),
    clipped to the B-scan.
    """
    sx, sy = labels.spacing[0], labels.spacing[1] * OCT_DEPTH_STRETCH
    lo, hi = np.asarray(lesion.bbox_voxel_min), np.asarray(lesion.bbox_voxel_max)
    ext = hi - lo + 1
    width_mm = max(3.0 * ext[0] * sx, 1.0)
    height_mm = 3.0 * ext[1] * sy
    aspect = OCT_ZOOM_BOX_PX[0] / OCT_ZOOM_BOX_PX[1]
    width_mm, height_mm = max(width_mm, height_mm * aspect), max(height_mm, width_mm / aspect)
    return (_crop((lo[0] + hi[0]) / 2, width_mm / sx / 2, labels.shape[0]),
            _crop((lo[1] + hi[1]) / 2, height_mm / sy / 2, labels.shape[1]))  # fmt: skip


def _fit(width_mm: float, height_mm: float, box: tuple[int, int]) -> tuple[int, int]:
    scale = min(box[0] / width_mm, box[1] / height_mm)
    return max(int(width_mm * scale), 40 * SCALE), max(int(height_mm * scale), 40 * SCALE)


def oct_lesion_figure(
    image: Volume | None,
    labels: Volume,
    lesion: LesionRecord,
    classes: Mapping[int, str],
    ends: tuple[str, str] | None = None,
) -> FigureImage:
    """A fluid pocket enlarged on the B-scan where it is widest, beside the whole B-scan.

    Args:
        image: the OCT ``(X, Y, Z)`` = (lateral, depth, B-scan), or ``None`` (black background).
        labels: the label map on the same grid.
        lesion: the pocket.
        classes: class value -> name of the outlined classes.
        ends: names of the B-scan's first and last A-scan side, e.g. ``("temporal", "nasal")``.
    """
    k = lesion.inplane_slice
    sx, sy = labels.spacing[0], labels.spacing[1] * OCT_DEPTH_STRETCH
    plane = image.array[:, :, k] if image is not None else np.zeros(labels.shape[:2])
    mask = labels.array[:, :, k]
    window = display_range(plane, "OPT")
    ci, cj = _oct_crop(labels, lesion)
    size = _fit((ci.stop - ci.start) * sx, (cj.stop - cj.start) * sy, OCT_ZOOM_BOX_PX)
    segments = [((a[0] - ci.start, a[1] - cj.start), (b[0] - ci.start, b[1] - cj.start), dashed)
                for a, b, dashed in _axes(lesion)]  # fmt: skip
    zoom = render_plane(plane[ci, cj], mask[ci, cj], classes=classes, window=window,
                        size_px=size, segments=segments)  # fmt: skip
    _scale_bar(zoom, size[0] / ((ci.stop - ci.start) * sx))
    thumb_size = (OCT_THUMB_WIDTH_PX, int(np.clip(OCT_THUMB_WIDTH_PX * plane.shape[1] * sy
                  / (plane.shape[0] * sx), 90 * SCALE, 250 * SCALE)))  # fmt: skip
    thumb = render_plane(plane, mask, classes=classes, window=window, size_px=thumb_size)
    fx, fy = thumb_size[0] / plane.shape[0], thumb_size[1] / plane.shape[1]
    _mark(thumb, (ci.start * fx, cj.start * fy, ci.stop * fx, cj.stop * fy))
    if ends is not None:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(thumb)
        _label(draw, (3 * SCALE, 2 * SCALE), ends[0], "lt")
        _label(draw, (thumb.width - 3 * SCALE, 2 * SCALE), ends[1], "rt")
    panels = [_Panel(zoom, f"B-scan {k}, enlarged"), _Panel(thumb, f"whole B-scan {k}")]
    picture = _compose(panels, _legend(classes, mask[ci, cj]))
    volume = f"{lesion.volume_nl:.1f} nL" if lesion.volume_nl is not None else ""
    where = f", {subfield_title(lesion.etdrs_subfield)} subfield" if lesion.etdrs_subfield else ""
    caption = (
        f"{lesion.label_name} {lesion.lesion_id} on B-scan {k} (0-based; depth stretched x2): "
        f"{volume}, on B-scans {lesion.slice_first}-{lesion.slice_last}, width "
        f"{lesion.inplane_long_mm:.2f} mm{where}. The yellow box on the whole B-scan marks the "
        "enlarged part."
    )
    return pil_figure(f"Lesion {lesion.lesion_id} ({lesion.label_name})", caption, picture)
