"""Figure plumbing shared by charts and overlays: the embedded-figure record, matplotlib figures
on their own Agg canvas (pyplot and the global backend are never touched), Pillow text and
legends, colours, windows.

Print resolution: a figure is shown at ``width_px`` CSS pixels (1 CSS px = 1/96 inch) and its PNG
holds :data:`SCALE` image pixels per CSS pixel, i.e. 192 dpi at the shown size (more when a
narrow page shrinks it). Matplotlib figures are drawn at :data:`PRINT_DPI` with font sizes in
points, so a 9 pt label prints at 9 pt.
"""

from __future__ import annotations

import base64
import functools
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

CSS_PX_PER_INCH = 96
SCALE = 2
"""Image pixels per CSS pixel of every embedded figure."""
PRINT_DPI = CSS_PX_PER_INCH * SCALE
FONT_PT = 9.0
"""Smallest text size in figures (points at the shown size)."""
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
CT_WINDOW = (-160.0, 240.0)
YELLOW = (255, 225, 25)

LegendStyle = Literal["box", "line", "dashed"]


@dataclass(frozen=True)
class FigureImage:
    """A rendered figure: title, caption, PNG bytes and the width it is shown at.

    Attributes:
        title: short title (HTML ``alt`` text and caption lead).
        caption: what the figure shows, with units.
        png: the PNG file's bytes.
        width_px: display width in CSS pixels; the PNG is :data:`SCALE` times wider.
    """

    title: str
    caption: str
    png: bytes
    width_px: int

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI, for embedding in self-contained HTML."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def pixel_size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG in image pixels (read from its header)."""
        width, height = struct.unpack(">II", self.png[16:24])
        return int(width), int(height)

    @property
    def dpi_at_shown_size(self) -> float:
        """Image pixels per inch when shown ``width_px`` CSS pixels wide."""
        return self.pixel_size[0] / self.width_px * CSS_PX_PER_INCH


def new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib Figure (shown ``width_in`` inches wide) on its own Agg canvas.

    Constrained layout keeps axis labels and colour bars inside the figure; no pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=PRINT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def style_axes(ax: Any) -> None:
    """Readable ticks and a light grid on one matplotlib axes."""
    ax.tick_params(labelsize=FONT_PT)
    ax.xaxis.label.set_size(FONT_PT + 0.5)
    ax.yaxis.label.set_size(FONT_PT + 0.5)
    ax.title.set_size(FONT_PT + 1)


def outlined() -> list[Any]:
    """A dark outline around matplotlib text drawn on an image (legible on any colour)."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.5, foreground="black")]


def mpl_figure(title: str, caption: str, figure: Any) -> FigureImage:
    """Render a matplotlib figure to a :class:`FigureImage` shown at its size in inches."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PRINT_DPI)
    width_in = float(figure.get_figwidth())
    return FigureImage(title, caption, buffer.getvalue(), round(width_in * CSS_PX_PER_INCH))


def pil_figure(title: str, caption: str, picture: Any) -> FigureImage:
    """A Pillow image drawn at :data:`SCALE` pixels per CSS pixel as a :class:`FigureImage`."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)
    return FigureImage(title, caption, buffer.getvalue(), max(picture.width // SCALE, 1))


@functools.cache
def _font_file() -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


@functools.cache
def pil_font(size_css_px: float = 12.0) -> Any:
    """DejaVu Sans (shipped with matplotlib) at ``size_css_px`` CSS pixels, for Pillow."""
    from PIL import ImageFont

    return ImageFont.truetype(_font_file(), round(size_css_px * SCALE))


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b)``."""
    return tuple(int(hex_colour[n : n + 2], 16) for n in (1, 3, 5))  # type: ignore[return-value]


def legend_strip(width: int, entries: Sequence[tuple[str, str, LegendStyle]]) -> Any:
    """A white strip ``width`` image pixels wide with one swatch and label per entry.

    Args:
        width: strip width in image pixels.
        entries: ``(colour "#rrggbb", label, style)``; style ``box`` (filled square), ``line``
            or ``dashed``. Entries wrap onto further rows when the strip is too narrow.
    """
    from PIL import Image, ImageDraw

    font, row_h, pad = pil_font(12), 22 * SCALE, 8 * SCALE
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sizes = [28 * SCALE + int(probe.textlength(text, font=font)) + pad for _, text, _ in entries]
    rows, x = 1, pad
    for size in sizes:
        if x + size > width and x > pad:
            rows, x = rows + 1, pad
        x += size
    strip = Image.new("RGB", (width, rows * row_h + SCALE * 4), "white")
    draw = ImageDraw.Draw(strip)
    x, y = pad, SCALE * 2
    for (colour, text, style), size in zip(entries, sizes):
        if x + size > width and x > pad:
            x, y = pad, y + row_h
        mid = y + row_h // 2
        if style == "box":
            draw.rectangle([x, mid - 6 * SCALE, x + 16 * SCALE, mid + 6 * SCALE], fill=rgb(colour))
        else:
            step = 4 * SCALE if style == "dashed" else 20 * SCALE
            for x0 in range(x, x + 20 * SCALE, 2 * step if style == "dashed" else step):
                draw.line([(x0, mid), (min(x0 + step, x + 20 * SCALE), mid)], fill=rgb(colour),
                          width=2 * SCALE)  # fmt: skip
        draw.text((x + 24 * SCALE, mid), text, fill=(30, 30, 30), font=font, anchor="lm")
        x += size
    return strip


def colour_of(label: int) -> str:
    """A stable colour per class value."""
    return COLOURS[(label - 1) % len(COLOURS)]


def hex_of(colour: tuple[int, int, int]) -> str:
    """``(r, g, b)`` -> ``"#rrggbb"``."""
    return "#{:02x}{:02x}{:02x}".format(*colour)


def nl_text(volume_nl: float) -> str:
    """A fluid volume label: one decimal below 10 nL (so small pockets do not read as 0)."""
    return f"{volume_nl:.1f}" if volume_nl < 10 else f"{volume_nl:.0f}"


def display_range(image: npt.NDArray[Any], modality: str | None) -> tuple[float, float]:
    """Grey-level window: soft tissue for CT, 1st-99.5th percentile otherwise."""
    if (modality or "").upper() == "CT":
        return CT_WINDOW
    low, high = np.percentile(image, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))
