"""OCT macular edema: fluid per B-scan, per ETDRS subfield, total volumes, retinal thickness.

The volume is ``(X, Y, Z)`` = (lateral, depth, B-scan); see :mod:`medseg.reports.enface` for the
en-face frame and the ETDRS grid and :mod:`medseg.reports.fovea` for where the grid is centred.
Fluid volumes are in nanolitres (1 nL = 0.001 mm³), areas in mm², thicknesses in µm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.io.volume import Volume
from medseg.reports.enface import (
    BSCAN_AXIS,
    DEPTH_AXIS,
    OPPOSITE,
    SUBFIELDS,
    EnFaceFrame,
    enface_frame,
    side_of,
    subfield_area_mm2,
    subfield_coverage,
    subfield_index,
    subfield_of,
)
from medseg.reports.fovea import find_fovea
from medseg.reports.measure import NL_PER_MM3, label_mask
from medseg.reports.schema import BscanArea, Fovea, OCTAnalysis, ScanDirection, Subfield

logger = logging.getLogger(__name__)

SUBRETINAL_NAMES = ("srf", "subretinal", "ped", "pigment epithelial detachment")
RETINA_NAMES = ("retina",)
_POSITION_MARGIN_MM = 5.0
FOVEA_METHOD_TITLES = {
    "retina_label": "retina segmentation",
    "ilm_surface": "inner retinal surface (ILM) in the image",
    "scan_centre": "scan centre (no better cue)",
    "given": "given position",
    "vendor": "scanner's stored fovea",
}
"""How each fovea method reads in a report ("found from the ...")."""


@dataclass(frozen=True)
class OCTClasses:
    """Which label values are fluid (by name), subretinal fluid, and the retina."""

    fluid: dict[int, str]
    subretinal: tuple[int, ...] = ()
    retina: int | None = None

    @classmethod
    def from_names(cls, names: Mapping[int, str], fluid_labels: Sequence[int]) -> OCTClasses:
        """Fluid = ``fluid_labels``; subretinal and retina are recognised by their names."""
        fluid = {v: names.get(v, f"label_{v}") for v in fluid_labels}
        subretinal = tuple(v for v, n in fluid.items() if n.lower() in SUBRETINAL_NAMES)
        retina = next((v for v, n in names.items() if n.lower() in RETINA_NAMES), None)
        return cls(fluid, subretinal, retina)

    @property
    def intraretinal(self) -> tuple[int, ...]:
        return tuple(v for v in self.fluid if v not in self.subretinal)


def resolve_laterality(laterality: str | None, labels: Volume) -> tuple[str, str]:
    """``(eye, source)``: metadata if given, else the side of the scan centre, else assume OD.

    A right eye (OD) lies on the patient's right, at negative x LPS.
    """
    if laterality in ("OD", "OS"):
        return laterality, "metadata"
    centre = np.asarray(labels.shape, dtype=float) / 2.0 - 0.5
    x_lps = float(labels.voxel_to_lps(centre)[0])
    if abs(x_lps) > _POSITION_MARGIN_MM:
        return ("OD" if x_lps < 0 else "OS"), "position"
    return "OD", "assumed"


def bscan_spacing_mm(volume: Volume) -> float:
    """Distance between consecutive B-scan planes (voxel volume / in-plane pixel area), mm."""
    linear = volume.affine[:3, :3]
    pixel_area = float(np.linalg.norm(np.cross(linear[:, 0], linear[:, DEPTH_AXIS])))
    return volume.voxel_volume_mm3 / pixel_area


def bscan_areas(labels: Volume, fluid: Mapping[int, str]) -> list[BscanArea]:
    """Fluid area (mm²) per B-scan per class; ``sum(areas) * bscan_spacing_mm == volume``."""
    linear = labels.affine[:3, :3]
    pixel_area = float(np.linalg.norm(np.cross(linear[:, 0], linear[:, DEPTH_AXIS])))
    counts = {name: (labels.array == v).sum(axis=(0, 1)) for v, name in fluid.items()}
    return [
        BscanArea(bscan=k, areas_mm2={name: float(c[k]) * pixel_area for name, c in counts.items()})
        for k in range(labels.shape[BSCAN_AXIS])
    ]


def fluid_volumes_nl(labels: Volume, fluid: Mapping[int, str]) -> dict[str, float]:
    """Total volume per fluid class in nL (voxel count x voxel volume)."""
    nl_per_voxel = labels.voxel_volume_mm3 * NL_PER_MM3
    return {name: float((labels.array == v).sum()) * nl_per_voxel for v, name in fluid.items()}


def thickness_map_um(labels: Volume, classes: OCTClasses) -> npt.NDArray[np.float64]:
    """ILM-RPE thickness per A-scan ``(X, Z)`` in µm (retina and all fluid; NaN without retina)."""
    tissue = label_mask(
        labels.array, [v for v in (classes.retina, *classes.fluid) if v is not None]
    )
    depth = labels.shape[DEPTH_AXIS]
    top = np.argmax(tissue, axis=DEPTH_AXIS)
    bottom = depth - 1 - np.argmax(tissue[:, ::-1, :], axis=DEPTH_AXIS)
    has_retina = (labels.array == classes.retina).any(axis=DEPTH_AXIS)
    thickness = (bottom - top + 1) * labels.spacing[DEPTH_AXIS] * 1000.0
    return np.where(has_retina, thickness, np.nan)


def _subfields(
    labels: Volume, frame: EnFaceFrame, classes: OCTClasses
) -> tuple[list[Subfield], dict[str, float]]:
    codes = subfield_index(frame.column_coords(labels.shape))
    nl_per_voxel = labels.voxel_volume_mm3 * NL_PER_MM3
    column_nl = {
        name: (labels.array == v).sum(axis=DEPTH_AXIS) * nl_per_voxel
        for v, name in classes.fluid.items()
    }
    thickness = thickness_map_um(labels, classes) if classes.retina is not None else None
    coverage = subfield_coverage(frame, labels.shape)
    out = []
    for code, (name, ring, sector) in enumerate(SUBFIELDS):
        mine = codes == code
        mean_um = None
        if thickness is not None and np.isfinite(thickness[mine]).any():
            mean_um = float(np.nanmean(thickness[mine]))
        out.append(
            Subfield(
                name=name, ring=ring, sector=sector, area_mm2=subfield_area_mm2(ring),  # type: ignore[arg-type]
                coverage=coverage[name], thickness_um=mean_um,
                fluid_nl={fluid: float(m[mine].sum()) for fluid, m in column_nl.items()},
            )
        )  # fmt: skip
    beyond = codes == len(SUBFIELDS)
    outside = {fluid: float(m[beyond].sum()) for fluid, m in column_nl.items()}
    return out, outside


def analyze_oct(
    labels: Volume,
    *,
    classes: OCTClasses,
    laterality: str | None = None,
    image: Volume | None = None,
    fovea: Fovea | None = None,
    vendor_fovea: Fovea | None = None,
    case_id: str | None = None,
) -> OCTAnalysis:
    """Fluid analysis of one macular OCT volume.

    Args:
        labels: predicted label map ``(X, Y, Z)`` = (lateral, depth, B-scan), RAS affine.
        classes: fluid classes (and retina / subretinal ones), see :class:`OCTClasses`.
        laterality: ``"OD"``/``"OS"`` from metadata; else inferred (see
            :func:`resolve_laterality`).
        image: the OCT image on the same grid (fovea detection from the ILM).
        fovea: a known fovea (skips detection; ``method`` is kept as given).
        vendor_fovea: the fovea the scanner stored (method ``"vendor"``): the grid is centred
            on it and medseg's own detection is kept in ``fovea_detected`` for comparison.
        case_id: for error messages.

    Returns:
        :class:`OCTAnalysis`: fovea and method, per-B-scan areas, volumes, ETDRS subfields
        (fluid nL per class, coverage, thickness), central subfield thickness.

    Raises:
        GeometryError: the volume cannot be oriented (A-scan axis superior-inferior).
    """
    eye, source = resolve_laterality(laterality, labels)
    if fovea is None:
        fovea = find_fovea(
            labels, image=image, retina_label=classes.retina,
            subretinal_labels=classes.subretinal, intraretinal_labels=classes.intraretinal,
        )  # fmt: skip
    detected = None
    if vendor_fovea is not None:
        detected, fovea = fovea, vendor_fovea
    logger.debug("case %s: fovea by %s (%s)", case_id, fovea.method, fovea.detail)
    frame = enface_frame(labels.affine, eye, fovea.lps_mm, case_id=case_id)
    subfields, outside = _subfields(labels, frame, classes)
    return OCTAnalysis(
        laterality=eye, laterality_source=source, fovea=fovea, fovea_detected=detected,  # type: ignore[arg-type]
        bscan_spacing_mm=bscan_spacing_mm(labels), bscan_areas=bscan_areas(labels, classes.fluid),
        volumes_nl=fluid_volumes_nl(labels, classes.fluid), etdrs=subfields,
        fluid_outside_grid_nl=outside, central_subfield_thickness_um=subfields[0].thickness_um,
        scan_direction=scan_direction(frame),
    )  # fmt: skip


def scan_direction(frame: EnFaceFrame) -> ScanDirection:
    """Which fundus sides B-scan 0 / the last B-scan and the first / last A-scan lie on."""
    bscan = side_of(frame, frame.affine_lps[:3, BSCAN_AXIS])
    ascan = side_of(frame, frame.affine_lps[:3, 0])
    return ScanDirection(
        bscan_first=OPPOSITE[bscan],
        bscan_last=bscan,
        ascan_first=OPPOSITE[ascan],
        ascan_last=ascan,
    )


def lesion_subfield(frame: EnFaceFrame, centroid_lps: Sequence[float]) -> str:
    """ETDRS subfield name (or ``"outside"``) of a lesion centroid."""
    return str(subfield_of(frame.to_enface(np.asarray(centroid_lps))[None, :])[0])
