"""The fluid map and the ETDRS grid on the scan's own localizer (SLO/NIR fundus image).

Vendor exports (:mod:`medseg.io.oct_vendor`) carry the localizer image, its world placement and
where the B-scans lie on it. Everything here goes through world coordinates: a localizer pixel
is mapped to LPS, then onto the volume's en-face plane (:class:`~medseg.reports.enface.EnFaceFrame`)
to find the A-scan column under it, so the figure shows the analysis exactly where it was made.
The localizer is shown as the vendor shows it (fundus view: patient's left to the right,
superior up), so nasal lies to the right for OD and to the left for OS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.io.oct_vendor import Localizer
from medseg.io.volume import Volume
from medseg.reports.enface import (
    CENTRAL_RADIUS_MM,
    DEPTH_AXIS,
    INNER_RADIUS_MM,
    OUTER_RADIUS_MM,
    EnFaceFrame,
    enface_frame,
)
from medseg.reports.figures import (
    FONT_PT,
    FigureImage,
    mpl_figure,
    new_figure,
    nl_text,
    outlined,
)
from medseg.reports.fovea import ilm_depth_index
from medseg.reports.measure import label_mask
from medseg.reports.oct import FOVEA_METHOD_TITLES
from medseg.reports.schema import Fovea, OCTAnalysis
from medseg.text import plural

_SECTOR_DIRECTION = {"central": (0, 0), "superior": (0, 1), "nasal": (1, 0), "inferior": (0, -1),
                     "temporal": (-1, 0)}  # fmt: skip
_RING_RADIUS = {"central": 0.0, "inner": 1.0, "outer": 2.25}
_GRID_COLOUR = "#7fffd4"


def localizer_of(volume: Volume | None) -> Localizer | None:
    """The localizer a vendor volume carries in its ``meta`` (``None`` otherwise)."""
    found = None if volume is None else volume.meta.get("localizer")
    return found if isinstance(found, Localizer) else None


def vendor_fovea(labels: Volume, image: Volume | None) -> Fovea | None:
    """The fovea the scanner stored (ETDRS grid centre on the localizer), on the ILM.

    The en-face point comes from the localizer; its depth is the ILM of the image at that
    A-scan when the point lies inside the scan (else the top of the B-scans).
    """
    localizer = localizer_of(image)
    if localizer is None or localizer.fovea_px is None or image is None:
        return None
    i, _, k = labels.lps_to_voxel(localizer.to_lps(localizer.fovea_px))
    ci, ck = int(np.rint(i)), int(np.rint(k))
    j = 0.0
    if 0 <= ci < labels.shape[0] and 0 <= ck < labels.shape[2]:
        ilm = float(ilm_depth_index(image)[ci, ck])
        j = ilm - 0.5 if np.isfinite(ilm) else 0.0
    voxel = (float(i), j, float(k))
    x, y = localizer.fovea_px
    return Fovea(
        method="vendor",
        lps_mm=tuple(float(v) for v in labels.voxel_to_lps(voxel)),  # type: ignore[arg-type]
        voxel=voxel,
        detail=f"ETDRS grid centre stored by the scanner, localizer pixel ({x:.0f}, {y:.0f})",
    )


def _pixel_columns(
    localizer: Localizer, frame: EnFaceFrame, shape: tuple[int, int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Nearest A-scan column ``(i, k)`` under every localizer pixel, and which are inside."""
    rows, cols = localizer.image.shape
    x, y = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    lps = localizer.to_lps(np.stack([x, y], axis=-1))
    ik = frame.to_column(frame.to_enface(lps))
    i, k = np.rint(ik[..., 0]).astype(np.int64), np.rint(ik[..., 1]).astype(np.int64)
    inside = (i >= 0) & (i < shape[0]) & (k >= 0) & (k < shape[2])
    return i, k, inside


def fluid_on_localizer(
    localizer: Localizer, labels: Volume, frame: EnFaceFrame, fluid: Mapping[int, str]
) -> npt.NDArray[np.float64]:
    """Fluid height (µm) of the A-scan under each localizer pixel ``(rows, cols)``; NaN outside
    the scan or where there is no fluid."""
    height = label_mask(labels.array, fluid).sum(axis=DEPTH_AXIS) * labels.spacing[DEPTH_AXIS]
    i, k, inside = _pixel_columns(localizer, frame, labels.shape)
    out = np.full(localizer.image.shape, np.nan)
    out[inside] = height[i[inside], k[inside]] * 1000.0
    out[out == 0] = np.nan
    return out


def _to_px(localizer: Localizer, frame: EnFaceFrame, enface_mm: npt.ArrayLike) -> npt.NDArray:
    """``(..., 2)`` en-face (nasal, superior) mm -> localizer pixels ``(x, y)``."""
    e = np.asarray(enface_mm, dtype=np.float64)
    lps = frame.origin_lps + e[..., :1] * frame.nasal + e[..., 1:2] * frame.superior
    return localizer.to_px(lps)


def _draw_grid(ax: Any, localizer: Localizer, frame: EnFaceFrame, analysis: OCTAnalysis) -> None:
    """ETDRS circles, sector diagonals, N/T/S/I letters and fluid (nL) per subfield."""
    theta = np.linspace(0.0, 2.0 * np.pi, 181)
    for radius in (CENTRAL_RADIUS_MM, INNER_RADIUS_MM, OUTER_RADIUS_MM):
        px = _to_px(localizer, frame, np.stack([radius * np.cos(theta), radius * np.sin(theta)], 1))
        ax.plot(px[:, 0], px[:, 1], color=_GRID_COLOUR, lw=1)
    for angle in np.radians([45.0, 135.0, 225.0, 315.0]):
        unit = np.array([np.cos(angle), np.sin(angle)])
        px = _to_px(localizer, frame, [CENTRAL_RADIUS_MM * unit, OUTER_RADIUS_MM * unit])
        ax.plot(px[:, 0], px[:, 1], color=_GRID_COLOUR, lw=1)
    for letter, direction in (("N", (1, 0)), ("T", (-1, 0)), ("S", (0, 1)), ("I", (0, -1))):
        x, y = _to_px(localizer, frame, 3.4 * np.asarray(direction, dtype=float))
        ax.text(x, y, letter, color=_GRID_COLOUR, ha="center", va="center", fontsize=FONT_PT + 1,
                path_effects=outlined())  # fmt: skip
    for sub in analysis.etdrs:
        point = _RING_RADIUS[sub.ring] * np.asarray(_SECTOR_DIRECTION[sub.sector], dtype=float)
        x, y = _to_px(localizer, frame, point)
        ax.text(x, y, nl_text(sum(sub.fluid_nl.values())), color="cyan", ha="center",
                va="center", fontsize=FONT_PT + 1, fontweight="bold",
                path_effects=outlined())  # fmt: skip


def _line_fluid(ax: Any, localizer: Localizer, labels: Volume, fluid: Mapping[int, str]) -> Any:
    """Fluid height of the A-scans of a single B-scan, as dots along its line."""
    height = label_mask(labels.array, fluid).sum(axis=DEPTH_AXIS)[:, 0] * labels.spacing[1]
    columns = np.flatnonzero(height > 0)
    ijk = np.stack([columns, np.zeros_like(columns), np.zeros_like(columns)], axis=1)
    px = localizer.to_px(labels.voxel_to_lps(ijk)).reshape(-1, 2)
    top = max(float(height.max()) * 1000.0, 1.0)
    return ax.scatter(px[:, 0], px[:, 1], c=height[columns] * 1000.0, cmap="magma", vmin=0,
                      vmax=top, s=9, marker="s", linewidths=0, zorder=3)  # fmt: skip


def _draw_bscans(ax: Any, localizer: Localizer, labels: Volume) -> None:
    """Each B-scan's line where medseg placed it (first and last A-scan), first one brighter."""
    width, _, n = labels.shape
    for k in range(n):
        ends = localizer.to_px(labels.voxel_to_lps([[0, 0, k], [width - 1, 0, k]]))
        ax.plot(ends[:, 0], ends[:, 1], color="#4da6ff", lw=0.6, alpha=1.0 if k == 0 else 0.45)


def localizer_figure(
    localizer: Localizer, labels: Volume, analysis: OCTAnalysis, fluid: Mapping[int, str]
) -> FigureImage:
    """The localizer with the B-scan lines, the en-face fluid map and the ETDRS grid.

    Args:
        localizer: the scan's localizer (from the vendor volume's ``meta``).
        labels: predicted label map ``(X, Y, Z)`` on the vendor volume's grid.
        analysis: its OCT analysis (fovea, laterality, fluid per subfield).
        fluid: fluid class values -> names.
    """
    frame = enface_frame(labels.affine, analysis.laterality, analysis.fovea.lps_mm)
    rows, cols = localizer.image.shape
    figure = new_figure(6.2, 5.4, (0.1, 0.1, 0.1, 0.35))
    ax = figure.subplots()
    ax.imshow(localizer.image, cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
    if labels.shape[2] == 1:  # one B-scan: its fluid as a thick line along it
        shown = _line_fluid(ax, localizer, labels, fluid)
    else:
        heights = fluid_on_localizer(localizer, labels, frame, fluid)
        top = max(float(np.nan_to_num(heights).max()), 1.0)
        shown = ax.imshow(heights, cmap="magma", vmin=0, vmax=top, alpha=0.85,
                          interpolation="nearest")  # fmt: skip
    bar = figure.colorbar(shown, ax=ax, shrink=0.7)
    bar.set_label("fluid height (µm)", size=FONT_PT + 0.5)
    bar.ax.tick_params(labelsize=FONT_PT)
    _draw_bscans(ax, localizer, labels)
    _draw_grid(ax, localizer, frame, analysis)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_off()
    method = FOVEA_METHOD_TITLES.get(analysis.fovea.method, analysis.fovea.method)
    ax.set_title(f"{analysis.laterality}: fluid on the {localizer.modality} localizer",
                 fontsize=FONT_PT + 1)  # fmt: skip
    also = ""
    if analysis.fovea_detected is not None:
        gap = np.hypot(*frame.to_enface(np.asarray(analysis.fovea_detected.lps_mm)))
        detected = FOVEA_METHOD_TITLES.get(analysis.fovea_detected.method, "")
        also = f" medseg's own detection (from the {detected}) lies {gap * 1000:.0f} µm from it."
    lines = plural(labels.shape[2], "B-scan line")
    caption = (
        f"Fluid height per A-scan (colour) and the {lines} (blue, the first brighter) on the "
        "scanner's localizer; ETDRS circles of 1, 3 and 6 mm with total fluid per subfield in "
        f"nL, centred on the fovea found from the {method}.{also} Fundus view: superior up, the "
        "patient's left to the right."
    )
    return mpl_figure("Fluid on the localizer", caption, figure)
