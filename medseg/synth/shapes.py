"""Analytic shapes rendered on voxel grids (mm coordinates)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.types import Spacing


def grid_mm(shape: tuple[int, int, int], spacing: Spacing) -> tuple[npt.NDArray[np.float32], ...]:
    """Voxel-centre coordinates in mm from the volume centre, broadcastable to ``(X, Y, Z)``.

    Returns three arrays of shapes ``(X,1,1)``, ``(1,Y,1)``, ``(1,1,Z)`` (open grid).
    """
    axes = [((np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * s) for n, s in zip(shape, spacing)]
    return tuple(np.ix_(*axes))


def rotation_z(angle_rad: float) -> npt.NDArray[np.float64]:
    """3x3 rotation about the third axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in volume-centred mm coordinates.

    Attributes:
        center_mm: centre, mm from the volume centre along the array axes.
        radii_mm: semi-axes in mm along the ellipsoid's own axes.
        rotation: 3x3 matrix whose columns are the ellipsoid's axes in array-axis coordinates.
    """

    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))

    @property
    def volume_mm3(self) -> float:
        """Continuous volume 4/3 pi a b c."""
        a, b, c = self.radii_mm
        return float(4.0 / 3.0 * np.pi * a * b * c)

    def scaled(self, factor: float) -> Ellipsoid:
        """Same centre and axes, radii times ``factor``."""
        return Ellipsoid(self.center_mm, tuple(r * factor for r in self.radii_mm), self.rotation)  # type: ignore[arg-type]

    def normalized_radius(
        self, grid: tuple[npt.NDArray[np.float32], ...]
    ) -> npt.NDArray[np.float32]:
        """``sum((x_i / r_i)^2)`` on the open grid from :func:`grid_mm`; <= 1 inside."""
        rot = np.asarray(self.rotation, dtype=np.float32)
        d = [g - np.float32(c) for g, c in zip(grid, self.center_mm)]
        total: npt.NDArray[np.float32] | None = None
        for axis in range(3):
            # coordinate along the ellipsoid's own axis `axis`
            u = d[0] * rot[0, axis] + d[1] * rot[1, axis] + d[2] * rot[2, axis]
            term = (u / np.float32(self.radii_mm[axis])) ** 2
            total = term if total is None else total + term
        assert total is not None
        return total

    def mask(self, grid: tuple[npt.NDArray[np.float32], ...]) -> npt.NDArray[np.bool_]:
        """Boolean mask of voxel centres inside the ellipsoid."""
        return self.normalized_radius(grid) <= 1.0
