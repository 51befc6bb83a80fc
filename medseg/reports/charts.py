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

from medseg.drawing import colour_of
from medseg.io.volume import Volume
from medseg.reports.enface import (
    CENTRAL_RADIUS_MM,
    DEPTH_AXIS,
    INNER_RADIUS_MM,
    OUTER_RADIUS_MM,
    enface_frame,
)
from medseg.reports.figures import (
    FONT_PT,
    FigureImage,
    mpl_figure,
    new_figure,
    nl_text,
    outlined,
    style_axes,
)
from medseg.reports.longitudinal import series_key, study_order_key
from medseg.reports.measure import label_mask
from medseg.reports.oct import FOVEA_METHOD_TITLES
from medseg.reports.schema import OCTAnalysis, PatientReport

_SECTOR_ANGLE = {
    "central": 0.0, "superior": 90.0, "nasal": 0.0, "inferior": -90.0, "temporal": 180.0
}  # fmt: skip
_RING_RADIUS = {"central": 0.0, "inner": 1.0, "outer": 2.25}
_EXTENT_MM = 3.6
_FUNDUS_PX = 241
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINES = ("-", "--", ":", "-.")


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


def _side_names(ax: Any, laterality: str) -> None:
    """Superior / Inferior / Nasal / Temporal written beside the grid (fundus view)."""
    left, right = ("Temporal", "Nasal") if laterality == "OD" else ("Nasal", "Temporal")
    edge = OUTER_RADIUS_MM + 0.35
    for text, (x, y, rotation) in {
        "Superior": (0, edge, 0),
        "Inferior": (0, -edge, 0),
        left: (-edge, 0, 90),
        right: (edge, 0, -90),
    }.items():
        ax.text(x, y, text, color="white", ha="center", va="center", fontsize=FONT_PT,
                rotation=rotation, path_effects=outlined())  # fmt: skip


def etdrs_figure(labels: Volume, analysis: OCTAnalysis, fluid: Mapping[int, str]) -> FigureImage:
    """En-face fluid height map with the ETDRS grid and total fluid (nL) per subfield."""
    mirror = 1.0 if analysis.laterality == "OD" else -1.0  # fundus x = patient left
    height_um = label_mask(labels.array, fluid).sum(axis=DEPTH_AXIS) * (
        labels.spacing[DEPTH_AXIS] * 1000.0
    )
    figure = new_figure(5.0, 4.4, (0.7, 0.1, 0.6, 0.35))
    ax = figure.subplots()
    top = max(float(height_um.max()), 1.0)  # no fluid: black, not a degenerate colour scale
    shown = ax.imshow(_fundus_map(labels, analysis, height_um, mirror), origin="lower",
                      extent=(-_EXTENT_MM, _EXTENT_MM) * 2, cmap="magma", vmin=0, vmax=top,
                      interpolation="nearest")  # fmt: skip
    bar = figure.colorbar(shown, ax=ax, shrink=0.85)
    bar.set_label("fluid height (µm)", size=FONT_PT + 0.5)
    bar.ax.tick_params(labelsize=FONT_PT)
    _grid(ax)
    _side_names(ax, analysis.laterality)
    for sub in analysis.etdrs:
        angle = np.radians(_SECTOR_ANGLE[sub.sector])
        radius = _RING_RADIUS[sub.ring]
        x, y = mirror * radius * np.cos(angle), radius * np.sin(angle)
        ax.text(x, y, nl_text(sum(sub.fluid_nl.values())), color="#7fffd4", ha="center",
                va="center", fontsize=FONT_PT + 2, fontweight="bold",
                path_effects=outlined())  # fmt: skip
    ax.set_aspect("equal")
    ax.set_facecolor("#202020")
    ax.set_xlabel("mm from the fovea (fundus view)")
    ax.set_ylabel("mm from the fovea")
    ax.set_title(f"{analysis.laterality}: fluid per ETDRS subfield (nL)")
    style_axes(ax)
    caption = (
        "Total fluid per ETDRS subfield in nL (numbers) over the en-face fluid height (colour); "
        "circles of 1, 3 and 6 mm diameter centred on the fovea (found from the "
        f"{FOVEA_METHOD_TITLES[analysis.fovea.method]}). Fundus view: superior up, the "
        "patient's left to the right."
    )
    return mpl_figure("ETDRS fluid map", caption, figure)


def bscan_axis_label(analysis: OCTAnalysis) -> str:
    """``B-scan (0-based, 0 = inferior)`` when the scan direction is known."""
    direction = analysis.scan_direction
    side = f", 0 = {direction.bscan_first}" if direction is not None else ""
    return f"B-scan (0-based{side})"


def bscan_area_figure(analysis: OCTAnalysis) -> FigureImage:
    """Stacked areas (steps, one per B-scan) of fluid per B-scan and class."""
    figure = new_figure(6.4, 2.6, (0.8, 0.15, 0.55, 0.15))
    ax = figure.subplots()
    index = np.array([a.bscan for a in analysis.bscan_areas])
    bottom = np.zeros(len(index))
    for n, name in enumerate(analysis.volumes_nl):
        areas = np.array([a.areas_mm2.get(name, 0.0) for a in analysis.bscan_areas])
        ax.fill_between(index, bottom, bottom + areas, step="mid", label=name,
                        color=colour_of(n + 1), linewidth=0)  # fmt: skip
        bottom += areas
    ax.set_xlim(index[0] - 0.5, index[-1] + 0.5)
    ax.set_ylim(bottom=0, top=max(float(bottom.max()) * 1.15, 1e-3))
    if not bottom.any():
        ax.text(0.5, 0.5, "no fluid in any B-scan", transform=ax.transAxes, ha="center",
                va="center", fontsize=FONT_PT + 1, color="#555555")  # fmt: skip
    ax.set_xlabel(bscan_axis_label(analysis))
    ax.set_ylabel("fluid area (mm²)")
    ax.grid(axis="y", alpha=0.3)
    if analysis.volumes_nl:
        ax.legend(fontsize=FONT_PT, loc="upper right", title="class", title_fontsize=FONT_PT)
    style_axes(ax)
    caption = (
        f"Fluid cross-section area per B-scan and class; B-scans "
        f"{analysis.bscan_spacing_mm * 1000:.0f} µm apart."
    )
    return mpl_figure("Fluid per B-scan", caption, figure)


def parse_date(date: str | None) -> dt.date | None:
    """A study date from ``YYYY-MM-DD`` or ``YYYYMMDD`` (``None`` when unknown or unreadable)."""
    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(date or "", pattern).date()
        except ValueError:
            continue
    return None


def _series_lines(
    report: PatientReport, nanolitres: bool
) -> dict[str, dict[tuple[int, str], tuple[list[Any], list[float]]]]:
    """series -> (class value, name) -> (dates or study numbers, volumes)."""
    done = sorted((s for s in report.studies if s.status == "done"), key=study_order_key)
    dated = all(parse_date(s.study_date) is not None for s in done)
    out: dict[str, dict[tuple[int, str], tuple[list[Any], list[float]]]] = {}
    for n, study in enumerate(done):
        for total in study.totals:
            lines = out.setdefault(series_key(study), {})
            xs, ys = lines.setdefault((total.label, total.label_name), ([], []))
            xs.append(parse_date(study.study_date) if dated else n + 1)
            nl = total.volume_nl
            ys.append(nl if nanolitres and nl is not None else total.volume_mm3)
    return out


def _date_ticks(ax: Any, xs: list[Any]) -> None:
    """One tick per study (ISO dates, or study numbers when a date is unknown)."""
    ax.set_xticks(xs)
    if xs and isinstance(xs[0], dt.date):
        ax.set_xticklabels([x.isoformat() for x in xs], rotation=30, ha="right")
        ax.set_xlabel("study date")
        span = max((xs[-1] - xs[0]).days, 1)
        pad = dt.timedelta(days=max(span * 0.08, 1))
        ax.set_xlim(xs[0] - pad, xs[-1] + pad)
    else:
        ax.set_xlabel("study (date unknown)")


def trend_figure(report: PatientReport) -> FigureImage | None:
    """Total volume per class across studies, one panel per eye; ``None`` without a follow-up."""
    if not report.changes:  # no series (eye) with two measured studies
        return None
    nanolitres = any(t.volume_nl is not None for s in report.studies for t in s.totals)
    series = _series_lines(report, nanolitres)
    figure = new_figure(3.4 * len(series) + 0.4, 2.9, (0.8, 0.15, 0.95, 0.3))
    axes = np.atleast_1d(figure.subplots(1, len(series), sharey=True, squeeze=False)[0])
    for ax, (name, lines) in zip(axes, series.items()):
        for n, ((value, label), (xs, ys)) in enumerate(lines.items()):
            ax.plot(xs, ys, marker=_MARKERS[n % len(_MARKERS)], ls=_LINES[n % len(_LINES)],
                    color=colour_of(value), label=label, markersize=6)  # fmt: skip
        if name:
            ax.set_title(f"{name} eye")
        _date_ticks(ax, sorted({x for xs, _ in lines.values() for x in xs}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=FONT_PT, loc="best")
        style_axes(ax)
    axes[0].set_ylabel("volume (nL)" if nanolitres else "volume (mm³)")
    axes[0].set_ylim(bottom=0)
    caption = "Total lesion volume per class across studies" + (
        ", one panel per eye." if len(series) > 1 or nanolitres else "."
    )
    return mpl_figure("Trend", caption, figure)
