"""ETDRS fluid per subfield: medseg's column-based numbers equal eyepy's grid quantification.

eyepy (the ``oct`` extra, installed by ``make install``) quantifies a voxel annotation on a
circular grid in *localizer pixels*: it projects the annotation en face, warps it onto the
localizer (nearest B-scan and A-scan) and sums it inside each ring sector. medseg sums the
fluid of every A-scan column whose centre lies in the subfield. Both read the same eyepy volume
(HEYEX conventions: B-scan 0 inferior, positions in mm on the localizer) and the same fluid.

eyepy's real test export cannot serve here: its B-scans lie outside its cropped 50-pixel
localizer, so eyepy's localizer-based quantification sees none of the fluid. The volume below
is a Spectralis-like raster whose B-scans are a whole number of localizer pixels apart (so
eyepy's nearest-B-scan bands have equal widths), with one fluid pocket inside each subfield,
each of a different size, so that a mix-up of sectors, rings, sides or units shows up.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medseg.io.geometry import LPS_TO_RAS, apply_affine
from medseg.reports.enface import SUBFIELDS, enface_frame, subfield_index
from medseg.reports.oct import OCTClasses, analyze_oct
from medseg.reports.schema import Fovea

ep = pytest.importorskip("eyepy")

PX_MM = 0.01  # localizer pixel = A-scan spacing (eyepy scales grid radii by the A-scan spacing)
N_BSCANS, DEPTH, WIDTH, STEP_PX = 50, 48, 600, 12
SIZE_PX = 800
CENTRE_PX = (400.0, 400.0)  # (x, y): the grid centre on the localizer
EYEPY_REGIONS = {
    ("0-0.5", 0): "central",
    **{
        ("0.5-1.5", n): f"inner_{s}"
        for n, s in enumerate(("superior", "temporal", "inferior", "nasal"))
    },
    **{
        ("1.5-3.0", n): f"outer_{s}"
        for n, s in enumerate(("superior", "temporal", "inferior", "nasal"))
    },
}
"""eyepy's regions (``rotation=45``: sector 0 from 45° off the nasal horizontal, then on through
superior), the same for both eyes since eyepy mirrors its grid for OS."""


def _eyepy_volume(laterality: str, fluid: np.ndarray):  # type: ignore[no-untyped-def]
    from eyepy.io.utils import _compute_localizer_oct_transform

    x0, y_last = 100 * PX_MM, 100 * PX_MM
    bscan_meta = [
        ep.EyeBscanMeta(
            start_pos=(x0, y_last + (N_BSCANS - 1 - k) * STEP_PX * PX_MM),  # B-scan 0 inferior
            end_pos=(x0 + (WIDTH - 1) * PX_MM, y_last + (N_BSCANS - 1 - k) * STEP_PX * PX_MM),
            pos_unit="mm",
        )
        for k in range(N_BSCANS)
    ]
    meta = ep.EyeVolumeMeta(
        scale_x=PX_MM, scale_y=0.0039, scale_z=STEP_PX * PX_MM, scale_unit="mm",
        bscan_meta=bscan_meta, laterality=laterality,
    )  # fmt: skip
    localizer_meta = ep.EyeEnfaceMeta(scale_x=PX_MM, scale_y=PX_MM, scale_unit="mm",
                                      laterality=laterality, modality="NIR")  # fmt: skip
    localizer = ep.EyeEnface(np.zeros((SIZE_PX, SIZE_PX), np.uint8), localizer_meta)
    data = np.zeros((N_BSCANS, DEPTH, WIDTH), np.float32)
    transform = _compute_localizer_oct_transform(meta, localizer_meta, data.shape)
    volume = ep.EyeVolume(data=data, meta=meta, localizer=localizer, transformation=transform)
    annotation = volume.add_pixel_annotation(
        fluid, name="Fluid", radii=(0.5, 1.5, 3.0), n_sectors=(1, 4, 4), rotation=(0, 45, 45),
        center=CENTRE_PX,
    )  # fmt: skip
    return volume, annotation


def _pockets(frame, labels_shape, affine_ras):  # type: ignore[no-untyped-def]
    """Fluid ``(X, Y, Z)``: a pocket around the middle of each subfield, sizes all different."""
    i, k = np.meshgrid(np.arange(labels_shape[0]), np.arange(labels_shape[2]), indexing="ij")
    lps = apply_affine(LPS_TO_RAS @ affine_ras, np.stack([i, 0 * i, k], -1).astype(float))
    enface = frame.to_enface(lps)
    fluid = np.zeros(labels_shape, bool)
    middles = {"central": 0.0, "inner": 1.0, "outer": 2.25}
    angles = {"central": 0, "superior": 90, "nasal": 0, "inferior": -90, "temporal": 180}
    for n, (_, ring, sector) in enumerate(SUBFIELDS):
        centre = middles[ring] * np.array(
            [np.cos(np.radians(angles[sector])), np.sin(np.radians(angles[sector]))]
        )
        radius = 0.18 + 0.02 * n  # mm: pockets stay inside their subfield
        inside = np.hypot(*(enface - centre).transpose(2, 0, 1)) <= radius
        height = 4 + n  # voxels of fluid per A-scan: different volumes per subfield
        fluid[:, 10 : 10 + height, :] |= inside[:, None, :]
    return fluid


@pytest.mark.parametrize("laterality", ["OD", "OS"])
def test_etdrs_fluid_equals_eyepy_grid_quantification(laterality: str) -> None:
    from medseg.io.oct_vendor import scan_from_eyepy

    empty = np.zeros((N_BSCANS, DEPTH, WIDTH), bool)
    volume = scan_from_eyepy(_eyepy_volume(laterality, empty)[0]).volumes[0]
    localizer = volume.meta["localizer"]
    centre_lps = localizer.to_lps(CENTRE_PX)
    frame = enface_frame(volume.affine, laterality, centre_lps)
    fluid_xyz = _pockets(frame, volume.shape, volume.affine)
    labels = volume.with_array(fluid_xyz.astype(np.uint8))
    fovea = Fovea(method="given", lps_mm=tuple(centre_lps), voxel=(0.0, 0.0, 0.0))  # type: ignore[arg-type]
    ours = analyze_oct(labels, classes=OCTClasses({1: "fluid"}), laterality=laterality,
                       fovea=fovea)  # fmt: skip
    ours_nl = {s.name: s.fluid_nl["fluid"] for s in ours.etdrs}

    _, annotation = _eyepy_volume(laterality, np.transpose(fluid_xyz, (2, 1, 0)))
    quantified = annotation.quantification
    theirs_nl: dict[str, float] = {}
    for name, mask in annotation.masks.items():
        ring, sector = name.removeprefix("Radius: ").split(" Sector: ")
        ours_name = EYEPY_REGIONS[(ring, int(sector))]
        theirs_nl[ours_name] = float(quantified[f"{name} [mm³]"]) * 1000.0
        rows, cols = np.nonzero(mask > 0.5)  # the region lies where medseg's subfield lies
        weights = mask[rows, cols]
        px = np.stack([(cols * weights).sum(), (rows * weights).sum()]) / weights.sum()
        code = int(subfield_index(frame.to_enface(localizer.to_lps(px))[None])[0])
        assert SUBFIELDS[code][0] == ours_name, (laterality, name)
    assert set(theirs_nl) == set(ours_nl)  # eyepy's 9 regions are the 9 subfields
    for name, nl in ours_nl.items():
        assert nl > 0
        assert theirs_nl[name] == pytest.approx(nl, rel=0.01), name
    totals = sorted(ours_nl.values())
    assert min(b / a for a, b in itertools.pairwise(totals)) > 1.02  # a sector mix-up would show
