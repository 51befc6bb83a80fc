"""Synthetic macular OCT with intraretinal (IRF, label 1) and subretinal fluid (SRF, label 2).

Model (per eye, in mm): ``u`` lateral position along a B-scan, ``v`` position across B-scans, ``d``
depth from the top of the image. The RPE is a smooth, slightly curved surface; the neurosensory
retina above it has an inner part (RNFL..OPL) that thins into a foveal pit and an outer part (ONL,
photoreceptors). SRF lifts the retina off the RPE (a dome); IRF pockets are dark ellipsoids in the
inner/outer nuclear layers that also thicken the retina around them. Speckle is multiplicative
gamma noise followed by log compression to 8 bits, as in commercial OCT exports.

Rendering works one B-scan at a time (``(W, D)`` arrays), so realistic volumes stay cheap in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.types import Spacing

OCT_LABELS = {"0": "background", "1": "IRF", "2": "SRF"}
OCT_LABELS_WITH_RETINA = {**OCT_LABELS, "3": "retina"}
IRF_LABEL, SRF_LABEL, RETINA_LABEL = 1, 2, 3


@dataclass(frozen=True)
class OCTSize:
    """A size preset: B-scan width (A-scans), depth (pixels), B-scan count, field of view (mm)."""

    width: int
    depth: int
    bscans: int
    fov_mm: tuple[float, float, float] = (8.45, 1.93, 5.88)  # lateral, axial, across B-scans

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(X, Y, Z)`` = (lateral, depth, B-scan)."""
        return (self.width, self.depth, self.bscans)

    @property
    def spacing(self) -> Spacing:
        """Voxel size in mm along ``(X, Y, Z)``: lateral ~11 um, axial ~3.9 um, B-scans ~120 um."""
        return (
            self.fov_mm[0] / self.width,
            self.fov_mm[1] / self.depth,
            self.fov_mm[2] / self.bscans,
        )


OCT_SIZES: dict[str, OCTSize] = {
    "tiny": OCTSize(96, 64, 12, (6.4, 1.92, 6.0)),
    "small": OCTSize(256, 160, 25, (8.45, 1.93, 6.0)),
    "realistic": OCTSize(768, 496, 49, (8.45, 1.93, 5.88)),
}


@dataclass(frozen=True)
class IRFPocket:
    """Intraretinal cyst: lateral ellipse (mm), centred at a fraction of retinal thickness."""

    u: float
    v: float
    a: float
    b: float
    depth_frac: float
    half_frac: float


@dataclass(frozen=True)
class SRFDome:
    """Subretinal detachment: paraboloid of height ``height`` (mm) over a lateral ellipse."""

    u: float
    v: float
    a: float
    b: float
    height: float


@dataclass(frozen=True)
class EyeAnatomy:
    """One eye's sampled anatomy (mm, relative to the scan centre)."""

    fovea_uv: tuple[float, float]
    rpe_depth: float
    curvature: float
    tilt: tuple[float, float]
    pit_depth: float
    pit_width: float
    irf: tuple[IRFPocket, ...]
    srf: tuple[SRFDome, ...]
    brightness: float = 1.0

    def scaled(self, factor: float) -> EyeAnatomy:
        """Same eye with fluid shrunk/grown by ``factor`` (follow-up visits)."""
        irf = tuple(
            IRFPocket(p.u, p.v, p.a * factor, p.b * factor, p.depth_frac, p.half_frac * factor)
            for p in self.irf
        )
        srf = tuple(
            SRFDome(s.u, s.v, s.a * factor, s.b * factor, s.height * factor) for s in self.srf
        )
        return EyeAnatomy(
            self.fovea_uv,
            self.rpe_depth,
            self.curvature,
            self.tilt,
            self.pit_depth,
            self.pit_width,
            irf,
            srf,
            self.brightness,
        )


@dataclass
class OCTRender:
    """Rendered eye: ``image`` uint8, ``label`` uint8 and ``instances`` uint16, all ``(X, Y, Z)``.

    ``instances`` numbers fluid pockets 1..n in the order IRF pockets then SRF domes; ``kinds[i]``
    is the label of instance ``i + 1``. ``fovea_voxel`` is the ILM point above the foveal centre.
    """

    image: npt.NDArray[np.uint8]
    label: npt.NDArray[np.uint8]
    instances: npt.NDArray[np.uint16]
    kinds: list[int] = field(default_factory=list)
    fovea_voxel: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _min_extent(size: OCTSize) -> tuple[float, float]:
    """Smallest lateral (u) and across-scan (v) semi-axes that render on this grid."""
    sx, _, sz = size.spacing
    return 2.0 * sx, 0.6 * sz


def _sample_irf(
    rng: np.random.Generator, size: OCTSize, fovea: tuple[float, float]
) -> list[IRFPocket]:
    n = int(rng.integers(1, 7))
    min_a, min_b = _min_extent(size)
    pockets: list[IRFPocket] = []
    for _ in range(200):
        if len(pockets) == n:
            break
        r, phi = rng.uniform(0.15, 1.9), rng.uniform(0, 2 * np.pi)
        u, v = fovea[0] + r * np.cos(phi), fovea[1] + r * np.sin(phi)
        a = max(float(rng.uniform(0.06, 0.38)), min_a)
        b = max(float(rng.uniform(0.08, 0.45)), min_b)
        if any(np.hypot(u - p.u, v - p.v) < 1.15 * (max(a, b) + max(p.a, p.b)) for p in pockets):
            continue
        half = max(float(rng.uniform(0.07, 0.16)), min(0.2, 1.5 * size.spacing[1] / 0.3))
        pockets.append(IRFPocket(u, v, a, b, float(rng.uniform(0.38 + half, 0.86 - half)), half))
    return pockets


def _sample_srf(
    rng: np.random.Generator, size: OCTSize, fovea: tuple[float, float]
) -> list[SRFDome]:
    min_a, min_b = _min_extent(size)
    u = fovea[0] + rng.uniform(-0.5, 0.5)
    v = fovea[1] + rng.uniform(-0.4, 0.4)
    a = max(float(rng.uniform(0.5, 1.4)), 4 * min_a)
    b = max(float(rng.uniform(0.4, 1.2)), 3 * min_b)
    min_h = 4.0 * size.spacing[1]
    return [SRFDome(u, v, a, b, max(float(rng.uniform(0.04, 0.2)), min_h))]


def sample_eye_anatomy(rng: np.random.Generator, size: OCTSize, *, dry: bool = False) -> EyeAnatomy:
    """Draw one eye: fovea near the centre, 1-6 IRF pockets and/or an SRF dome; no fluid if dry."""
    fovea = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.3, 0.3)))
    irf = [] if dry or rng.uniform() < 0.2 else _sample_irf(rng, size, fovea)
    srf = [] if dry or rng.uniform() < 0.45 else _sample_srf(rng, size, fovea)
    if not dry and not irf and not srf:
        irf = _sample_irf(rng, size, fovea)
    return EyeAnatomy(
        fovea_uv=fovea,
        rpe_depth=float(rng.uniform(0.9, 1.0)) * size.fov_mm[1] / 1.93,
        curvature=float(rng.uniform(0.004, 0.01)),
        tilt=(float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.02, 0.02))),
        pit_depth=float(rng.uniform(0.85, 0.95)),
        pit_width=float(rng.uniform(0.4, 0.55)),
        irf=tuple(irf),
        srf=tuple(srf),
        brightness=float(rng.uniform(0.85, 1.1)),
    )


# Neurosensory bands: (fraction of the inner / outer retina where the band ends, reflectivity).
_INNER_BANDS = ((0.22, 0.80), (0.62, 0.52), (0.84, 0.22), (1.0, 0.58))  # RNFL, GCL+IPL, INL, OPL
_OUTER_BANDS = ((0.62, 0.17), (0.72, 0.74), (0.86, 0.33), (1.0, 0.62))  # ONL, EZ, OS, IZ
_FLUID, _VITREOUS, _RPE = 0.02, 0.012, 0.97


def _surfaces(
    eye: EyeAnatomy, u: npt.NDArray[np.floating], v: float
) -> dict[str, npt.NDArray[np.floating]]:
    """Depths (mm) along one B-scan: RPE, SRF height, inner/outer thickness, ILM."""
    du, dv = u - eye.fovea_uv[0], v - eye.fovea_uv[1]
    r2 = du**2 + dv**2
    pit = np.exp(-r2 / eye.pit_width**2)
    rpe = eye.rpe_depth - eye.curvature * (u**2 + v**2) + eye.tilt[0] * u + eye.tilt[1] * v
    t_in = 0.165 * (1.0 - eye.pit_depth * pit)
    t_out = 0.135 + 0.03 * pit
    srf_h = np.zeros_like(u)
    for s in eye.srf:
        q = ((u - s.u) / s.a) ** 2 + ((v - s.v) / s.b) ** 2
        srf_h = np.maximum(srf_h, s.height * np.clip(1.0 - q, 0.0, None))
    swell = np.zeros_like(u)
    for p in eye.irf:
        q = ((u - p.u) / (1.6 * p.a)) ** 2 + ((v - p.v) / (1.6 * p.b)) ** 2
        swell += 1.6 * p.half_frac * 0.3 * np.sqrt(np.clip(1.0 - q, 0.0, None))
    scale = 1.0 + swell
    bottom = rpe - srf_h
    ilm = bottom - (t_in + t_out) * scale
    return {"rpe": rpe, "srf_h": srf_h, "t_in": t_in * scale, "t_out": t_out * scale, "ilm": ilm}


def _bands(
    frac: npt.NDArray[np.float64], bands: tuple[tuple[float, float], ...]
) -> npt.NDArray[np.float64]:
    out = np.full(frac.shape, bands[-1][1])
    for end, value in reversed(bands):
        out = np.where(frac < end, value, out)
    return out


def _render_bscan(
    eye: EyeAnatomy, size: OCTSize, v: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint16]]:
    """Reflectivity ``(W, D)`` in [0, 1] before speckle, and the fluid instance map ``(W, D)``."""
    sx, sy, _ = size.spacing
    u = (np.arange(size.width) - (size.width - 1) / 2.0) * sx
    d = (np.arange(size.depth) + 0.5) * sy
    s = _surfaces(eye, u, v)
    ilm, t_in, t_out, rpe = (
        s["ilm"][:, None],
        s["t_in"][:, None],
        s["t_out"][:, None],
        s["rpe"][:, None],
    )
    dd = d[None, :]
    rel = dd - ilm
    refl = np.full((size.width, size.depth), _VITREOUS)
    refl = np.where((rel >= 0) & (rel < t_in), _bands(rel / t_in, _INNER_BANDS), refl)
    outer = rel - t_in
    refl = np.where((outer >= 0) & (outer < t_out), _bands(outer / t_out, _OUTER_BANDS), refl)
    srf_top = rpe - s["srf_h"][:, None]
    refl = np.where((dd >= srf_top) & (dd < rpe), _FLUID, refl)
    below = dd - rpe
    choroid = 0.42 * np.exp(-np.clip(below - 0.03, 0, None) / 0.16)
    refl = np.where(below >= 0, np.where(below < 0.03, _RPE, choroid), refl)

    inst = np.zeros((size.width, size.depth), dtype=np.uint16)
    thick = t_in + t_out
    for i, p in enumerate(eye.irf, start=1):
        across = ((v - p.v) / p.b) ** 2
        if across > 1.0:
            continue  # this B-scan misses the pocket
        cols = np.flatnonzero(np.abs(u - p.u) <= p.a)  # only the A-scans under the pocket
        if cols.size == 0:
            continue
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        q = ((u[lo:hi, None] - p.u) / p.a) ** 2 + across
        q = q + ((rel[lo:hi] - p.depth_frac * thick[lo:hi]) / (p.half_frac * thick[lo:hi])) ** 2
        inst[lo:hi][q <= 1.0] = i
    srf_mask = (dd >= srf_top) & (dd < rpe) & (s["srf_h"][:, None] > 0)
    inst[srf_mask] = len(eye.irf) + 1
    refl = np.where(inst > 0, _FLUID, refl)
    return refl, inst


def _speckle(
    refl: npt.NDArray[np.float64], rng: np.random.Generator, brightness: float
) -> npt.NDArray[np.uint8]:
    """Multiplicative gamma speckle, additive noise, log compression to uint8."""
    gamma = rng.standard_gamma(2.0, size=refl.shape, dtype=np.float32)
    speckled = refl.astype(np.float32) * gamma * np.float32(0.5 * brightness)
    speckled = ndimage.uniform_filter1d(speckled, 2, axis=1)
    speckled += np.abs(rng.standard_normal(size=refl.shape, dtype=np.float32)) * np.float32(0.012)
    compressed = np.log1p(np.float32(40.0) * speckled) * np.float32(255.0 / np.log1p(40.0))
    return np.clip(compressed, 0, 255).astype(np.uint8)


def render_eye(
    eye: EyeAnatomy, size: OCTSize, rng: np.random.Generator, *, retina_label: bool = False
) -> OCTRender:
    """Render all B-scans of one eye.

    Args:
        eye: sampled anatomy.
        size: grid preset.
        rng: noise source.
        retina_label: also label the neurosensory retina (ILM to RPE, fluid excluded) as 3.
    """
    _, _, sz = size.spacing
    image = np.empty(size.shape, dtype=np.uint8)
    label = np.zeros(size.shape, dtype=np.uint8)
    instances = np.zeros(size.shape, dtype=np.uint16)
    kinds = [IRF_LABEL] * len(eye.irf) + [SRF_LABEL] * len(eye.srf)
    for k in range(size.bscans):
        v = (k - (size.bscans - 1) / 2.0) * sz
        refl, inst = _render_bscan(eye, size, v, rng)
        image[:, :, k] = _speckle(refl, rng, eye.brightness)
        instances[:, :, k] = inst
        if retina_label:
            s = _surfaces(
                eye, (np.arange(size.width) - (size.width - 1) / 2.0) * size.spacing[0], v
            )
            d = (np.arange(size.depth) + 0.5) * size.spacing[1]
            inside = (d[None, :] >= s["ilm"][:, None]) & (d[None, :] < s["rpe"][:, None] + 0.03)
            label[:, :, k][inside] = RETINA_LABEL
    lut = np.array([0, *kinds], dtype=np.uint8)
    fluid = instances > 0
    label[fluid] = lut[instances[fluid]]
    fovea_surf = _surfaces(eye, np.array([eye.fovea_uv[0]]), eye.fovea_uv[1])
    fovea_voxel = (
        eye.fovea_uv[0] / size.spacing[0] + (size.width - 1) / 2.0,
        float(fovea_surf["ilm"][0]) / size.spacing[1] - 0.5,
        eye.fovea_uv[1] / sz + (size.bscans - 1) / 2.0,
    )
    return OCTRender(image, label, instances, kinds, fovea_voxel)
