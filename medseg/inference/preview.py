"""PNG preview: the slice with the most foreground, labels overlaid.

Slices are taken along the last axis, or along the one-voxel axis of a one-slice volume (a 2D
image or B-scan stored with its slice axis elsewhere), so the preview shows the whole image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg.io.atomic import atomic_path
from medseg.types import PathLike

COLORS = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]], dtype=np.float32,
)  # fmt: skip


def _window(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scaled = (image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def overlay_slice(
    image: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], *, alpha: float = 0.45
) -> npt.NDArray[np.uint8]:
    """RGB ``(rows, columns, 3)`` of an ``(X, Y)`` slice with coloured labels (DICOM display)."""
    gray = _window(image).T.astype(np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    lab = labels.T
    colors = COLORS[np.minimum(lab, len(COLORS) - 1)]
    mask = lab > 0
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colors[mask]
    return rgb.astype(np.uint8)


def best_slice(labels: npt.NDArray[np.integer]) -> int:
    """Index along the last axis with the most foreground (the middle slice if there is none)."""
    counts = (labels > 0).reshape(-1, labels.shape[-1]).sum(axis=0)
    return int(np.argmax(counts)) if counts.max() > 0 else labels.shape[-1] // 2


def preview_axis(shape: tuple[int, ...]) -> int:
    """Axis the preview slices along: the one-voxel axis of a one-slice volume, else the last."""
    flat = [a for a, n in enumerate(shape) if n == 1]
    return flat[0] if len(flat) == 1 else len(shape) - 1


def write_preview(
    image: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], path: PathLike
) -> Path:
    """Write the overlay of the slice with the most foreground as PNG (atomic)."""
    from PIL import Image

    axis = preview_axis(labels.shape)
    image, labels = np.moveaxis(image, axis, -1), np.moveaxis(labels, axis, -1)
    k = best_slice(labels)
    rgb = overlay_slice(image[:, :, k], labels[:, :, k])
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return target
