"""Synthetic CT phantom: air, body, spine, an organ (label 1) and lesions (label 2) in HU.

All geometry is sampled in mm relative to the volume centre, then rendered at voxel centres, so the
same anatomy can be rendered at any size preset. Lesions are ellipsoids fully inside the organ and
never touch each other, so each truth lesion is exactly one connected component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.synth.shapes import Ellipsoid, grid_mm, rotation_z
from medseg.types import Spacing

CT_LABELS = {"0": "background", "1": "organ", "2": "lesion"}
ORGAN_LABEL = 1
LESION_LABEL = 2


@dataclass(frozen=True)
class CTSize:
    """A size preset: array shape ``(X, Y, Z)``, spacing in mm, lesion count range."""

    shape: tuple[int, int, int]
    spacing: Spacing
    lesions: tuple[int, int]


CT_SIZES: dict[str, CTSize] = {
    "tiny": CTSize((40, 40, 20), (2.0, 2.0, 3.0), (1, 2)),
    "small": CTSize((96, 96, 48), (1.6, 1.6, 3.0), (1, 4)),
    "realistic": CTSize((256, 256, 100), (1.4, 1.4, 2.5), (2, 5)),
}


@dataclass(frozen=True)
class CTAnatomy:
    """Sampled anatomy of one patient (mm, volume-centred)."""

    body_radii_mm: tuple[float, float]
    spine_center_mm: tuple[float, float]
    spine_radius_mm: float
    organ: Ellipsoid
    lesions: tuple[Ellipsoid, ...]


@dataclass(frozen=True)
class CTRender:
    """A rendered phantom: ``hu`` int16 and ``label`` uint8, both ``(X, Y, Z)``."""

    hu: npt.NDArray[np.int16]
    label: npt.NDArray[np.uint8]
    lesion_masks: tuple[npt.NDArray[np.bool_], ...]


def _fov_mm(size: CTSize) -> npt.NDArray[np.float64]:
    return np.asarray(size.shape, dtype=np.float64) * np.asarray(size.spacing)


def _sample_organ(rng: np.random.Generator, fov: npt.NDArray[np.float64]) -> Ellipsoid:
    center = (
        -0.12 * fov[0] * rng.uniform(0.8, 1.2),
        -0.04 * fov[1],
        rng.uniform(-0.05, 0.05) * fov[2],
    )
    radii = (
        0.2 * fov[0] * rng.uniform(0.9, 1.1),
        0.16 * fov[1] * rng.uniform(0.9, 1.1),
        0.36 * fov[2] * rng.uniform(0.9, 1.05),
    )
    rot = rotation_z(rng.uniform(-0.3, 0.3))
    return Ellipsoid(center, radii, tuple(map(tuple, rot)))


def _inside_organ(organ: Ellipsoid, lesion: Ellipsoid, margin: float = 0.85) -> bool:
    """Conservative test that ``lesion`` lies inside ``organ`` (sampled surface points)."""
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(200, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rot_l = np.asarray(lesion.rotation)
    pts = np.asarray(lesion.center_mm) + (dirs * np.asarray(lesion.radii_mm)) @ rot_l.T
    rot_o = np.asarray(organ.rotation)
    local = (pts - np.asarray(organ.center_mm)) @ rot_o
    return bool(np.all(np.sum((local / np.asarray(organ.radii_mm)) ** 2, axis=1) <= margin**2))


def _sample_lesions(
    rng: np.random.Generator, organ: Ellipsoid, size: CTSize
) -> tuple[Ellipsoid, ...]:
    n = int(rng.integers(size.lesions[0], size.lesions[1] + 1))
    min_r = 1.6 * max(size.spacing)
    max_r = max(min_r * 1.2, 0.3 * min(organ.radii_mm))
    lesions: list[Ellipsoid] = []
    rot_o = np.asarray(organ.rotation)
    for _ in range(400):
        if len(lesions) == n:
            break
        r = float(rng.uniform(min_r, max_r))
        radii = (r, r * rng.uniform(0.75, 1.25), max(r * rng.uniform(0.75, 1.25), min_r))
        local = rng.uniform(-0.55, 0.55, size=3) * np.asarray(organ.radii_mm)
        center = np.asarray(organ.center_mm) + rot_o @ local
        cand = Ellipsoid(
            tuple(center.tolist()),
            radii,
            tuple(map(tuple, rotation_z(rng.uniform(0, np.pi)))),
        )
        far = all(
            np.linalg.norm(center - np.asarray(o.center_mm))
            > max(radii) + max(o.radii_mm) + 2 * min_r
            for o in lesions
        )
        if far and _inside_organ(organ, cand):
            lesions.append(cand)
    return tuple(lesions)


def sample_ct_anatomy(rng: np.random.Generator, size: CTSize) -> CTAnatomy:
    """Draw one patient's anatomy for a size preset."""
    fov = _fov_mm(size)
    organ = _sample_organ(rng, fov)
    return CTAnatomy(
        body_radii_mm=(
            0.44 * fov[0] * rng.uniform(0.92, 1.0),
            0.34 * fov[1] * rng.uniform(0.92, 1.0),
        ),
        spine_center_mm=(0.0, 0.2 * fov[1]),
        spine_radius_mm=0.05 * fov[0],
        organ=organ,
        lesions=_sample_lesions(rng, organ, size),
    )


def render_ct(
    anatomy: CTAnatomy,
    size: CTSize,
    rng: np.random.Generator,
    *,
    lesion_scale: float = 1.0,
    noise_hu: float = 12.0,
) -> CTRender:
    """Render HU and labels at voxel centres; ``lesion_scale`` grows/shrinks lesions (follow-up)."""
    g = grid_mm(size.shape, size.spacing)
    bx, by = anatomy.body_radii_mm
    body2d = (g[0] / bx) ** 2 + (g[1] / by) ** 2
    body = np.broadcast_to(body2d <= 1.0, size.shape)
    fat = np.broadcast_to(body2d > 0.78, size.shape) & body
    sx, sy = anatomy.spine_center_mm
    spine = np.broadcast_to(
        (g[0] - sx) ** 2 + (g[1] - sy) ** 2 <= anatomy.spine_radius_mm**2, size.shape
    )
    organ = anatomy.organ.mask(g)
    lesion_masks = tuple(les.scaled(lesion_scale).mask(g) & organ for les in anatomy.lesions)

    hu = np.full(size.shape, -1000.0, dtype=np.float32)
    hu[body] = 35.0
    hu[fat] = -95.0
    hu[spine & body] = 650.0
    hu[organ] = 62.0
    label = np.zeros(size.shape, dtype=np.uint8)
    label[organ] = ORGAN_LABEL
    for mask in lesion_masks:
        hu[mask] = 18.0
        label[mask] = LESION_LABEL
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size.shape).astype(np.float32), 0.6)
    noise *= noise_hu / max(float(noise.std()), 1e-6)
    hu += np.where(body, noise, noise * 0.3)
    return CTRender(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), label, lesion_masks)
