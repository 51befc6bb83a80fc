"""Pillow drawing helpers shared by prediction previews and report figures (no torch).

Class colours are one palette everywhere (previews, report outlines, charts). Text uses DejaVu
Sans shipped with matplotlib, so figures look the same on every machine.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

SCALE = 2
"""Image pixels per CSS pixel of figures shown in HTML (192 dpi at the shown size)."""
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
"""Class colours: class value 1 gets the first, and so on (cycling)."""

LegendStyle = Literal["box", "line", "dashed"]


def colour_of(label: int) -> str:
    """The colour (``"#rrggbb"``) of a class value."""
    return COLOURS[(label - 1) % len(COLOURS)]


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b)``."""
    return tuple(int(hex_colour[n : n + 2], 16) for n in (1, 3, 5))  # type: ignore[return-value]


def hex_of(colour: tuple[int, int, int]) -> str:
    """``(r, g, b)`` -> ``"#rrggbb"``."""
    return "#{:02x}{:02x}{:02x}".format(*colour)


@functools.cache
def _font_file() -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


@functools.cache
def pil_font(size_css_px: float = 12.0, scale: int = SCALE) -> Any:
    """DejaVu Sans at ``size_css_px`` CSS pixels (``scale`` image pixels each), for Pillow."""
    from PIL import ImageFont

    return ImageFont.truetype(_font_file(), round(size_css_px * scale))


def legend_strip(
    width: int, entries: Sequence[tuple[str, str, LegendStyle]], *, scale: int = SCALE
) -> Any:
    """A white strip ``width`` image pixels wide with one swatch and label per entry.

    Args:
        width: strip width in image pixels.
        entries: ``(colour "#rrggbb", label, style)``; style ``box`` (filled square), ``line``
            or ``dashed``. Entries wrap onto further rows when the strip is too narrow.
        scale: image pixels per CSS pixel.
    """
    from PIL import Image, ImageDraw

    font, row_h, pad = pil_font(12, scale), 22 * scale, 8 * scale
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sizes = [28 * scale + int(probe.textlength(text, font=font)) + pad for _, text, _ in entries]
    rows, x = 1, pad
    for size in sizes:
        if x + size > width and x > pad:
            rows, x = rows + 1, pad
        x += size
    strip = Image.new("RGB", (width, rows * row_h + scale * 4), "white")
    draw = ImageDraw.Draw(strip)
    x, y = pad, scale * 2
    for (colour, text, style), size in zip(entries, sizes):
        if x + size > width and x > pad:
            x, y = pad, y + row_h
        _swatch(draw, x, y + row_h // 2, colour, style, scale)
        draw.text((x + 24 * scale, y + row_h // 2), text, fill=(30, 30, 30), font=font,
                  anchor="lm")  # fmt: skip
        x += size
    return strip


def _swatch(draw: Any, x: int, mid: int, colour: str, style: LegendStyle, scale: int) -> None:
    if style == "box":
        draw.rectangle([x, mid - 6 * scale, x + 16 * scale, mid + 6 * scale], fill=rgb(colour))
        return
    dash = 4 * scale if style == "dashed" else 20 * scale
    for x0 in range(x, x + 20 * scale, 2 * dash if style == "dashed" else dash):
        end = min(x0 + dash, x + 20 * scale)
        draw.line([(x0, mid), (end, mid)], fill=rgb(colour), width=2 * scale)
