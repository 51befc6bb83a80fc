"""Figure plumbing shared by charts and overlays: the embedded-figure record, matplotlib figures
on their own Agg canvas (pyplot and the global backend are never touched), colours, windows.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DPI = 72
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
CT_WINDOW = (-160.0, 240.0)


@dataclass(frozen=True)
class FigureImage:
    """A rendered figure: title, caption and PNG bytes."""

    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI, for embedding in self-contained HTML."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib Figure on its own Agg canvas (thread-safe, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def to_png(figure: Any) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def colour_of(label: int) -> str:
    """A stable colour per class value."""
    return COLOURS[(label - 1) % len(COLOURS)]


def nl_text(volume_nl: float) -> str:
    """A fluid volume label: one decimal below 10 nL (so small pockets do not read as 0)."""
    return f"{volume_nl:.1f}" if volume_nl < 10 else f"{volume_nl:.0f}"


def display_range(image: npt.NDArray[Any], modality: str | None) -> tuple[float, float]:
    """Grey-level window: soft tissue for CT, 1st-99.5th percentile otherwise."""
    if (modality or "").upper() == "CT":
        return CT_WINDOW
    low, high = np.percentile(image, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))
