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
import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.drawing import SCALE

CSS_PX_PER_INCH = 96
PRINT_DPI = CSS_PX_PER_INCH * SCALE
FONT_PT = 9.0
"""Smallest text size in figures (points at the shown size)."""
CT_WINDOW = (-160.0, 240.0)
YELLOW = (255, 225, 25)


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


Margins = tuple[float, float, float, float]
"""Room around the axes in inches: (left, right, bottom, top), for tick and axis labels."""


def new_figure(
    width_in: float, height_in: float, margins_in: Margins = (0.8, 0.2, 0.6, 0.4)
) -> Any:
    """A matplotlib Figure (shown ``width_in`` inches wide) on its own Agg canvas.

    The axes leave fixed margins in inches (room for tick and axis labels at :data:`FONT_PT`)
    instead of a layout engine, which costs about as much again as drawing; no pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=PRINT_DPI)
    FigureCanvasAgg(figure)
    left, right, bottom, top = margins_in
    figure.subplots_adjust(left=left / width_in, right=1 - right / width_in,
                           bottom=bottom / height_in, top=1 - top / height_in)  # fmt: skip
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


def nl_text(volume_nl: float) -> str:
    """A fluid volume label: one decimal below 10 nL (so small pockets do not read as 0)."""
    return f"{volume_nl:.1f}" if volume_nl < 10 else f"{volume_nl:.0f}"


def display_range(image: npt.NDArray[Any], modality: str | None) -> tuple[float, float]:
    """Grey-level window: soft tissue for CT, 1st-99.5th percentile otherwise."""
    if (modality or "").upper() == "CT":
        return CT_WINDOW
    low, high = np.percentile(image, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))
