"""Report charts: the ETDRS fluid map, fluid area per B-scan, and the longitudinal trend.

The ETDRS map is drawn in the fundus view (as seen facing the patient): the patient's left (+x
LPS) to the right and superior up, so nasal is on the right for OD and on the left for OS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.io.volume import Volume
from medseg.reports.enface import (
    CENTRAL_RADIUS_MM,
    DEPTH_AXIS,
    INNER_RADIUS_MM,
    OUTER_RADIUS_MM,
    enface_frame,
)
from medseg.reports.figures import FigureImage, colour_of, new_figure, nl_text, to_png
from medseg.reports.longitudinal import series_key, study_order_key
from medseg.reports.measure import label_mask
from medseg.reports.schema import OCTAnalysis, PatientReport

_SECTOR_ANGLE = {
    "central": 0.0, "superior": 90.0, "nasal": 0.0, "inferior": -90.0, "temporal": 180.0
}  # fmt: skip
_RING_RADIUS = {"central": 0.0, "inner": 1.0, "outer": 2.25}
_EXTENT_MM = 3.4
_FUNDUS_PX = 241


def _grid(ax: Any) -> None:
    """ETDRS circles (1, 3, 6 mm) and the sector diagonals, in white."""
    for radius in (CENTRAL_RADIUS_MM, INNER_RADIUS_MM, OUTER_RADIUS_MM):
        theta = np.linspace(0, 2 * np.pi, 181)
        ax.plot(radius * np.cos(theta), radius * np.sin(theta), color="white", lw=1)
    for angle in (45, 135, 225, 315):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        ax.plot([CENTRAL_RADIUS_MM * c, OUTER_RADIUS_MM * c],
                [CENTRAL_RADIUS_MM * s, OUTER_RADIUS_MM * s], color="white", lw=1)  # fmt: skip


def _fundus_map(
    labels: Volume, analysis: OCTAnalysis, enface: npt.NDArray[np.float64], mirror: float
) -> npt.NDArray[np.float64]:
    """An ``(X, Z)`` en-face map resampled (nearest column) on a square fundus-view grid.

    Rows run inferior to superior, columns along the patient's left; NaN outside the scan.
    """
    frame = enface_frame(labels.affine, analysis.laterality, analysis.fovea.lps_mm)
    axis = np.linspace(-_EXTENT_MM, _EXTENT_MM, _FUNDUS_PX)
    across, up = np.meshgrid(axis, axis, indexing="xy")
    ik = np.rint(frame.to_column(np.stack([mirror * across, up], axis=-1))).astype(np.int64)
    inside = (ik[..., 0] >= 0) & (ik[..., 0] < enface.shape[0])
    inside &= (ik[..., 1] >= 0) & (ik[..., 1] < enface.shape[1])
    out = np.full(across.shape, np.nan)
    out[inside] = enface[ik[inside, 0], ik[inside, 1]]
    return out


def etdrs_figure(labels: Volume, analysis: OCTAnalysis, fluid: Mapping[int, str]) -> FigureImage:
    """En-face fluid height map with the ETDRS grid and total fluid (nL) per subfield."""
    mirror = 1.0 if analysis.laterality == "OD" else -1.0  # fundus x = patient left
    height_um = label_mask(labels.array, fluid).sum(axis=DEPTH_AXIS) * (
        labels.spacing[DEPTH_AXIS] * 1000.0
    )
    figure = new_figure(4.6, 4.0)
    figure.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.93)
    ax = figure.subplots()
    shown = ax.imshow(_fundus_map(labels, analysis, height_um, mirror), origin="lower",
                      extent=(-_EXTENT_MM, _EXTENT_MM) * 2, cmap="magma", vmin=0,
                      interpolation="nearest")  # fmt: skip
    figure.colorbar(shown, ax=ax, label="fluid height (µm)", shrink=0.8)
    _grid(ax)
    for sub in analysis.etdrs:
        angle = np.radians(_SECTOR_ANGLE[sub.sector])
        radius = _RING_RADIUS[sub.ring]
        x, y = mirror * radius * np.cos(angle), radius * np.sin(angle)
        total = sum(sub.fluid_nl.values())
        ax.text(x, y, nl_text(total), color="cyan", ha="center", va="center", fontsize=8,
                fontweight="bold")  # fmt: skip
    ax.set_aspect("equal")
    ax.set_facecolor("#202020")
    left, right = ("T", "N") if analysis.laterality == "OD" else ("N", "T")
    ax.set_xlabel(f"{left}  ←  mm  →  {right}")
    ax.set_ylabel("I  ←  mm  →  S")
    title = f"{analysis.laterality} ETDRS fluid (nL), fovea: {analysis.fovea.method}"
    ax.set_title(title, fontsize=9)
    caption = (
        "Total fluid per ETDRS subfield in nL over the en-face fluid height; circles of 1, 3 and "
        f"6 mm centred on the fovea (found by {analysis.fovea.method}). Fundus view."
    )
    return FigureImage("ETDRS fluid map", caption, to_png(figure))


def bscan_area_figure(analysis: OCTAnalysis) -> FigureImage:
    """Stacked areas (steps, one per B-scan) of fluid per B-scan and class."""
    figure = new_figure(6.0, 2.4)
    figure.subplots_adjust(left=0.11, right=0.98, bottom=0.2, top=0.95)
    ax = figure.subplots()
    index = np.array([a.bscan for a in analysis.bscan_areas])
    bottom = np.zeros(len(index))
    for n, name in enumerate(analysis.volumes_nl):
        areas = np.array([a.areas_mm2.get(name, 0.0) for a in analysis.bscan_areas])
        ax.fill_between(index, bottom, bottom + areas, step="mid", label=name,
                        color=colour_of(n + 1), linewidth=0)  # fmt: skip
        bottom += areas
    ax.set_xlim(index[0] - 0.5, index[-1] + 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("B-scan")
    ax.set_ylabel("fluid area (mm²)")
    if analysis.volumes_nl:
        ax.legend(fontsize=8, loc="upper right")
    caption = f"Fluid area per B-scan; B-scans {analysis.bscan_spacing_mm * 1000:.0f} µm apart."
    return FigureImage("Fluid per B-scan", caption, to_png(figure))


def _when(date: str | None, fallback: int) -> dt.date | int:
    try:
        return dt.datetime.strptime(date or "", "%Y%m%d").date()
    except ValueError:
        return fallback


def trend_figure(report: PatientReport) -> FigureImage | None:
    """Total volume per class (and series) across studies; ``None`` without a follow-up."""
    if not report.changes:  # no series (eye) with two measured studies
        return None
    done = sorted((s for s in report.studies if s.status == "done"), key=study_order_key)
    nanolitres = any(t.volume_nl is not None for s in done for t in s.totals)
    figure = new_figure(6.0, 2.8)
    figure.subplots_adjust(left=0.12, right=0.98, bottom=0.25, top=0.95)
    ax = figure.subplots()
    lines: dict[tuple[str, str], tuple[list[object], list[float]]] = {}
    for n, study in enumerate(done):
        for total in study.totals:
            xs, ys = lines.setdefault((series_key(study), total.label_name), ([], []))
            xs.append(_when(study.study_date, n))
            nl = total.volume_nl
            ys.append(nl if nanolitres and nl is not None else total.volume_mm3)
    for (series, name), (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o", label=f"{series} {name}".strip())
    ax.set_ylabel("volume (nL)" if nanolitres else "volume (mm³)")
    ax.set_xlabel("study date")
    ax.legend(fontsize=8)
    figure.autofmt_xdate()
    caption = "Total lesion volume per class across studies (per eye for OCT)."
    return FigureImage("Trend", caption, to_png(figure))
