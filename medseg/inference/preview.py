"""PNG preview of a prediction: a montage of the slices holding the most foreground, each
enlarged to a readable size, labels overlaid in the report colours, with a colour legend naming
the classes.

Slices are taken along the last axis, or along the one-voxel axis of a one-slice volume (a 2D
image or B-scan stored with its slice axis elsewhere), so the preview shows the whole image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.drawing import LegendStyle, colour_of, legend_strip, pil_font, rgb
from medseg.io.atomic import atomic_path
from medseg.types import PathLike

MAX_SLICES = 4
MIN_PANEL_PX = 320
"""Shorter side of a panel after enlarging (small CT slices of 40 px become 320 px)."""
MAX_PANEL_PX = 640
_GAP = 6
_HEADER = 26


def _window(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scaled = (image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def overlay_slice(
    image: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], *, alpha: float = 0.45
) -> npt.NDArray[np.uint8]:
    """RGB ``(rows, columns, 3)`` of an ``(X, Y)`` slice with coloured labels (DICOM display)."""
    gray = _window(image).T.astype(np.float32)
    out = np.repeat(gray[..., None], 3, axis=2)
    lab = labels.T
    for value in np.unique(lab[lab > 0]):
        mask = lab == value
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(rgb(colour_of(int(value))))
    return out.astype(np.uint8)


def best_slices(labels: npt.NDArray[np.integer], n: int = MAX_SLICES) -> list[int]:
    """Up to ``n`` indices along the last axis with the most foreground, in index order.

    Slices without foreground are left out; with no foreground at all, the middle slice.
    """
    counts = (labels > 0).reshape(-1, labels.shape[-1]).sum(axis=0)
    if counts.max() == 0:
        return [labels.shape[-1] // 2]
    ranked = [int(k) for k in np.argsort(-counts, kind="stable")[:n] if counts[k] > 0]
    return sorted(ranked)


def _panel_size(shape: tuple[int, int], spacing: Sequence[float]) -> tuple[int, int]:
    """(width, height) of a panel: physical aspect, shorter side >= MIN_PANEL_PX if possible.

    Aspects beyond 2:1 are stretched to 2:1 (an OCT B-scan's depth, as OCT viewers show it).
    """
    width_mm, height_mm = shape[0] * spacing[0], shape[1] * spacing[1]
    width_mm, height_mm = max(width_mm, height_mm / 2), max(height_mm, width_mm / 2)
    scale = max(MIN_PANEL_PX / min(width_mm, height_mm), 1e-9)
    scale = min(scale, MAX_PANEL_PX / max(width_mm, height_mm))
    return max(int(width_mm * scale), 1), max(int(height_mm * scale), 1)


def montage(
    image: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    *,
    label_names: Mapping[int, str] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Any:
    """The preview as a PIL image: up to four slices in a 2-column grid, a legend below.

    Args:
        image: ``(X, Y, Z)`` source image.
        labels: ``(X, Y, Z)`` predicted label map on the same grid.
        label_names: class value -> name for the legend (``label <value>`` when missing).
        spacing: voxel size in mm (only the in-plane ratio matters).
    """
    from PIL import Image, ImageDraw

    picks = best_slices(labels)
    size = _panel_size(labels.shape[:2], spacing)
    columns = min(len(picks), 2)
    rows = (len(picks) + 1) // 2
    width = columns * size[0] + (columns - 1) * _GAP
    grid = Image.new("RGB", (width, rows * (size[1] + _HEADER)), "white")
    draw = ImageDraw.Draw(grid)
    for n, k in enumerate(picks):
        x, y = (n % 2) * (size[0] + _GAP), (n // 2) * (size[1] + _HEADER)
        panel = Image.fromarray(overlay_slice(image[:, :, k], labels[:, :, k]))
        grid.paste(panel.resize(size, Image.Resampling.NEAREST), (x, y + _HEADER))
        count = int((labels[:, :, k] > 0).sum())
        draw.text((x + 4, y + _HEADER // 2), f"slice {k} (0-based): {count} labelled px",
                  fill=(30, 30, 30), font=pil_font(13, 1), anchor="lm")  # fmt: skip
    names = dict(label_names or {})
    present = [int(v) for v in np.unique(labels) if v > 0]
    entries: list[tuple[str, str, LegendStyle]] = [
        (colour_of(v), names.get(v, f"label {v}"), "box") for v in present
    ]
    strip = legend_strip(width, entries or [("#ffffff", "no foreground", "box")], scale=1)
    out = Image.new("RGB", (width, grid.height + strip.height), "white")
    out.paste(grid, (0, 0))
    out.paste(strip, (0, grid.height))
    return out


def preview_axis(shape: tuple[int, ...]) -> int:
    """Axis the preview slices along: the one-voxel axis of a one-slice volume, else the last."""
    flat = [a for a, n in enumerate(shape) if n == 1]
    return flat[0] if len(flat) == 1 else len(shape) - 1


def write_preview(
    image: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    path: PathLike,
    *,
    label_names: Mapping[int, str] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Path:
    """Write the :func:`montage` as PNG (atomic). Slice indices in it are 0-based.

    Slices run along :func:`preview_axis` (the one-voxel axis of a one-slice volume).
    """
    axis = preview_axis(labels.shape)
    image, labels = np.moveaxis(image, axis, -1), np.moveaxis(labels, axis, -1)
    spacing = [*(s for a, s in enumerate(spacing) if a != axis), spacing[axis]]
    target = Path(path)
    picture = montage(image, labels, label_names=label_names, spacing=spacing)
    with atomic_path(target) as tmp:
        picture.save(tmp, format="PNG")
    return target
