"""Small 2D data sets written as real files: PNG (grey, RGB), TIFF and one-slice NIfTI.

Every case is a non-square image (``ROWS x COLUMNS``) with a bright disk (label 1) on a noisy
background. ``encoded=True`` writes images whose intensity is ``100 x label`` instead (for the
oracle network of ``tests/inference/conftest.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile
from PIL import Image

ROWS, COLUMNS = 40, 52
KINDS = ("nifti_one_slice", "png_grey", "png_rgb", "tiff")
NIFTI_AFFINE = np.array(
    [[-0.5, 0, 0, 30.0], [0, 2.0, 0, -12.0], [0, 0, -0.8, 7.5], [0, 0, 0, 1]], dtype=np.float64
)
"""A one-slice (coronal) NIfTI: array axis 1 is the 2 mm slice, not RAS (x flipped, rows go
inferior)."""


def disk(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32, label uint8)`` of shape ``(ROWS, COLUMNS)``."""
    yy, xx = np.mgrid[:ROWS, :COLUMNS]
    cy, cx, r = rng.uniform(12, ROWS - 12), rng.uniform(12, COLUMNS - 12), rng.uniform(6, 9)
    label = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.uint8)
    image = 40.0 + 120.0 * label + rng.normal(0.0, 8.0, label.shape)
    return np.clip(image, 0, 255).astype(np.float32), label


def _write(
    kind: str, image: np.ndarray, label: np.ndarray, images: Path, labels: Path, name: str
) -> tuple[Path, Path]:
    if kind == "png_grey":  # masks 0/255
        Image.fromarray(image.astype(np.uint8)).save(images / f"{name}.png")
        Image.fromarray((label * 255).astype(np.uint8)).save(labels / f"{name}.png")
        return images / f"{name}.png", labels / f"{name}.png"
    if kind == "png_rgb":  # colour image, palette mask
        rgb = np.stack([image, 255 - image, np.full_like(image, 30)], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(images / f"{name}.png")
        mask = Image.fromarray(label, mode="P")
        mask.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
        mask.save(labels / f"{name}_mask.png")
        return images / f"{name}.png", labels / f"{name}_mask.png"
    if kind == "tiff":  # 16-bit with a resolution of 40 pixels/cm (0.25 mm); labels 0/1
        tifffile.imwrite(
            images / f"{name}.tif",
            (image * 100).astype(np.uint16),
            resolution=(40, 40),
            resolutionunit="CENTIMETER",
        )
        tifffile.imwrite(labels / f"{name}.tif", label)
        return images / f"{name}.tif", labels / f"{name}.tif"
    # one-slice NIfTI: array (X = column, Z = 1 ..., Y = row) under a non-RAS affine
    nib.save(nib.Nifti1Image(image.T[:, None, :], NIFTI_AFFINE), images / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(label.T[:, None, :], NIFTI_AFFINE), labels / f"{name}.nii.gz")
    return images / f"{name}.nii.gz", labels / f"{name}.nii.gz"


def write_2d_dataset(
    root: Path, kind: str, *, n_cases: int = 4, seed: int = 0, encoded: bool = False
) -> Path:
    """Write ``root/images``, ``root/labels`` and ``root/pairs.csv``; returns ``root``.

    Case ``P<k>_img`` belongs to patient ``P<k>``.
    """
    rng = np.random.default_rng(seed)
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n_cases):
        image, label = disk(rng)
        if encoded:
            image = 100.0 * label.astype(np.float32)
        image_path, label_path = _write(kind, image, label, images, labels, f"P{k}_img")
        rows.append(
            (image_path.relative_to(images), Path("..") / label_path.relative_to(root), f"P{k}")
        )
    with (root / "pairs.csv").open("w", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["image", "label", "patient_id"])
        writer.writerows(rows)
    return root


WORKFLOW = """schema_version: 1
name: tiny2d
manifest: {manifest}
model: {{name: dynunet, base_filters: 4, max_filters: 16}}
train: {{epochs: 1, iterations_per_epoch: 2, batch_size: 2, num_workers: 0,
        augmentation: {{preset: none}}}}
infer: {{overlap: 0.25}}
"""


def write_workflow(path: Path, manifest: Path) -> Path:
    """A tiny workflow without ``task.dims``: the plan must choose 2D from the data."""
    path.write_text(WORKFLOW.format(manifest=manifest), encoding="utf-8")
    return path
