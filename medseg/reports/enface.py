"""The en-face frame of an OCT volume and the ETDRS grid laid on it.

An OCT volume is ``(X, Y, Z)`` = (lateral, depth, B-scan): array axis 1 is the A-scan (depth)
axis. The *en-face plane* is perpendicular to the A-scan direction *in world coordinates* (taken
from the affine, so oblique scans are handled). On it, a 2D frame centred on the fovea has a
*nasal* axis (OD: patient left = +x LPS; OS: −x LPS) and a *superior* axis (+z LPS), both
projected into the plane. Every voxel of an A-scan column ``(i, :, k)`` projects to the same
en-face point, so en-face maps are ``(X, Z)`` arrays over columns.

ETDRS grid (Early Treatment Diabetic Retinopathy Study): circles of 1, 3 and 6 mm diameter centred
on the fovea; the inner (1-3 mm) and outer (3-6 mm) rings are split into superior, nasal, inferior
and temporal quadrants by the diagonals, giving 9 subfields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError
from medseg.io.geometry import ras_to_lps_affine
from medseg.reports.schema import FundusSide
from medseg.types import Affine

DEPTH_AXIS = 1
BSCAN_AXIS = 2
CENTRAL_RADIUS_MM, INNER_RADIUS_MM, OUTER_RADIUS_MM = 0.5, 1.5, 3.0
SECTORS = ("superior", "nasal", "inferior", "temporal")
SUBFIELDS: tuple[tuple[str, str, str], ...] = (
    ("central", "central", "central"),
    *((f"inner_{s}", "inner", s) for s in SECTORS),
    *((f"outer_{s}", "outer", s) for s in SECTORS),
)
"""(name, ring, sector) of the 9 ETDRS subfields, in report order."""
OUTSIDE = "outside"


def subfield_area_mm2(ring: str) -> float:
    """Nominal area of one subfield of ``ring`` (central, inner or outer) in mm²."""
    if ring == "central":
        return float(np.pi * CENTRAL_RADIUS_MM**2)
    inner, outer = (
        (CENTRAL_RADIUS_MM, INNER_RADIUS_MM)
        if ring == "inner"
        else (INNER_RADIUS_MM, OUTER_RADIUS_MM)
    )
    return float(np.pi * (outer**2 - inner**2) / 4.0)


def _unit(vector: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float64)


@dataclass(frozen=True)
class EnFaceFrame:
    """A 2D frame on the en-face plane: origin (LPS mm) and unit nasal/superior/depth axes (LPS)."""

    affine_lps: Affine
    origin_lps: npt.NDArray[np.float64]
    nasal: npt.NDArray[np.float64]
    superior: npt.NDArray[np.float64]
    depth: npt.NDArray[np.float64]

    def to_enface(self, points_lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(..., 3)`` LPS points -> ``(..., 2)`` (nasal mm, superior mm) from the origin."""
        rel = np.asarray(points_lps, dtype=np.float64) - self.origin_lps
        return np.stack([rel @ self.nasal, rel @ self.superior], axis=-1)

    def column_coords(self, shape: tuple[int, int, int]) -> npt.NDArray[np.float64]:
        """En-face ``(X, Z, 2)`` (nasal, superior) mm of every A-scan column's centre."""
        i, k = np.meshgrid(np.arange(shape[0]), np.arange(shape[2]), indexing="ij")
        ijk = np.stack([i, np.zeros_like(i), k], axis=-1).astype(np.float64)
        lps = ijk @ self.affine_lps[:3, :3].T + self.affine_lps[:3, 3]
        return self.to_enface(lps)

    def to_column(self, enface_mm: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Inverse of :meth:`column_coords`: ``(..., 2)`` en-face mm -> continuous ``(i, k)``."""
        a = self.affine_lps[:3, :3]
        basis = np.array([[self.nasal @ a[:, 0], self.nasal @ a[:, 2]],
                          [self.superior @ a[:, 0], self.superior @ a[:, 2]]])  # fmt: skip
        zero = self.to_enface(self.affine_lps[:3, 3])
        relative = np.asarray(enface_mm, dtype=np.float64) - zero
        return np.asarray(relative @ np.linalg.inv(basis).T, dtype=np.float64)


def enface_frame(
    affine_ras: Affine, laterality: str, origin_lps: npt.ArrayLike, *, case_id: str | None = None
) -> EnFaceFrame:
    """Build the en-face frame of an OCT volume for one eye, centred at ``origin_lps``.

    Args:
        affine_ras: the volume's voxel->RAS affine; array axis 1 is the A-scan axis.
        laterality: ``"OD"`` (nasal = +x LPS) or ``"OS"`` (nasal = −x LPS).
        origin_lps: the grid centre (fovea), LPS mm.
        case_id: for error messages.

    Raises:
        GeometryError: the A-scan axis is (nearly) superior-inferior, so no en-face superior axis.
    """
    affine_lps = ras_to_lps_affine(affine_ras)
    depth = _unit(affine_lps[:3, DEPTH_AXIS])
    up = np.array([0.0, 0.0, 1.0])
    superior = up - (up @ depth) * depth
    if np.linalg.norm(superior) < 0.2:
        raise GeometryError(
            "the OCT A-scan axis runs superior-inferior; cannot orient the ETDRS grid",
            case_id=case_id,
            hint="check the image orientation (array axis 1 must be the A-scan/depth axis)",
        )
    superior = _unit(superior)
    side = np.array([1.0 if laterality == "OD" else -1.0, 0.0, 0.0])
    nasal = side - (side @ depth) * depth - (side @ superior) * superior
    if np.linalg.norm(nasal) < 0.2:
        raise GeometryError("cannot find a nasal direction on the en-face plane", case_id=case_id)
    origin = np.asarray(origin_lps, dtype=np.float64)
    return EnFaceFrame(affine_lps, origin, _unit(nasal), superior, depth)


SUBFIELD_NAMES: tuple[str, ...] = (*(name for name, _, _ in SUBFIELDS), OUTSIDE)
"""Names by :func:`subfield_index` code: 0 central, 1-4 inner S/N/I/T, 5-8 outer, 9 outside."""


def subfield_index(enface_mm: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """ETDRS subfield code (index into :data:`SUBFIELD_NAMES`) of ``(..., 2)`` en-face points.

    Points are (nasal, superior) mm from the fovea. Sector boundaries are the diagonals; a point
    on a boundary belongs to the sector counter-clockwise from nasal (superior at +45°).
    """
    nasal, sup = enface_mm[..., 0], enface_mm[..., 1]
    radius = np.hypot(nasal, sup)
    angle = np.degrees(np.arctan2(sup, nasal))
    sector = np.full(radius.shape, 3, dtype=np.int64)  # temporal
    sector[(angle > 45) & (angle <= 135)] = 0  # superior
    sector[(angle > -45) & (angle <= 45)] = 1  # nasal
    sector[(angle > -135) & (angle <= -45)] = 2  # inferior
    code = np.where(radius <= INNER_RADIUS_MM, 1 + sector, 5 + sector)
    code[radius <= CENTRAL_RADIUS_MM] = 0
    code[radius > OUTER_RADIUS_MM] = len(SUBFIELD_NAMES) - 1
    return code


def subfield_of(enface_mm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
    """ETDRS subfield name (or ``"outside"``) of ``(..., 2)`` en-face points (nasal, superior)."""
    return np.asarray(SUBFIELD_NAMES)[subfield_index(enface_mm)]


def subfield_coverage(
    frame: EnFaceFrame, shape: tuple[int, int, int], *, step_mm: float = 0.025
) -> dict[str, float]:
    """Fraction of each ETDRS subfield inside the scan's en-face footprint.

    The 6 mm disk is sampled on a square grid of ``step_mm``; a sample is covered when it falls
    inside the footprint of the scanned columns (voxel centres ± half a voxel).
    """
    axis = np.arange(-OUTER_RADIUS_MM, OUTER_RADIUS_MM + step_mm / 2, step_mm)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    codes = subfield_index(points)
    ik = frame.to_column(points)
    inside = (
        (ik[:, 0] >= -0.5) & (ik[:, 0] <= shape[0] - 0.5)
        & (ik[:, 1] >= -0.5) & (ik[:, 1] <= shape[2] - 0.5)
    )  # fmt: skip
    covered = np.bincount(codes[inside], minlength=len(SUBFIELD_NAMES))
    total = np.bincount(codes, minlength=len(SUBFIELD_NAMES))
    return {name: float(covered[n] / max(total[n], 1)) for n, (name, _, _) in enumerate(SUBFIELDS)}


def subfield_title(name: str) -> str:
    """Clinical name of an ETDRS subfield or ring position.

    Example:
        >>> subfield_title("inner_superior"), subfield_title("central")
        ('Inner superior', 'Central')
    """
    if name == OUTSIDE:
        return "Outside the grid"
    return name.replace("_", " ").capitalize()


def side_of(frame: EnFaceFrame, direction_lps: npt.ArrayLike) -> FundusSide:
    """The fundus side a direction points to: ``superior``, ``inferior``, ``nasal`` or
    ``temporal`` (the larger of its en-face components)."""
    vector = np.asarray(direction_lps, dtype=np.float64)
    nasal, superior = float(vector @ frame.nasal), float(vector @ frame.superior)
    if abs(nasal) >= abs(superior):
        return "nasal" if nasal > 0 else "temporal"
    return "superior" if superior > 0 else "inferior"


OPPOSITE: dict[FundusSide, FundusSide] = {
    "superior": "inferior", "inferior": "superior", "nasal": "temporal", "temporal": "nasal"
}  # fmt: skip
