"""Write a patient report: ``report.json``, ``lesions.csv`` and a self-contained ``report.html``,
plus the cohort table ``cohort.csv`` (one row per patient study). All writes are atomic.

The HTML is one file: inline CSS, figures embedded as base64 PNG, no scripts, fonts or links.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.io.atomic import write_text_atomic
from medseg.reports.charts import trend_figure
from medseg.reports.enface import subfield_title
from medseg.reports.figures import FigureImage
from medseg.reports.glance import glance
from medseg.reports.oct import FOVEA_METHOD_TITLES
from medseg.reports.schema import LesionRecord, PatientReport, StudyReport
from medseg.text import plural
from medseg.types import PathLike

COHORT_CSV = "cohort.csv"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


_EMPTY_LESION = LesionRecord(
    lesion_id=1, label=0, label_name="", n_voxels=1, volume_mm3=0.0, longest_diameter_mm=0.0,
    inplane_long_mm=0.0, inplane_short_mm=0.0, inplane_slice=0,
    long_axis_voxel=((0, 0, 0), (0, 0, 0)), short_axis_voxel=((0, 0, 0), (0, 0, 0)),
    centroid_lps_mm=(0, 0, 0), centroid_voxel=(0, 0, 0), bbox_voxel_min=(0, 0, 0),
    bbox_voxel_max=(0, 0, 0), bbox_lps_min_mm=(0, 0, 0), bbox_lps_max_mm=(0, 0, 0),
    slice_first=0, slice_last=0,
)  # fmt: skip
"""Template record giving ``lesions.csv`` its header when a patient has no lesions."""


def patient_folder_name(patient_id: str) -> str:
    """A file-system-safe folder name for a patient id (other characters become ``_``)."""
    name = _SAFE.sub("_", patient_id).strip("._")
    return name or "patient"


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV text with a header; columns default to the union of row keys in first-seen order."""
    fields = list(columns or dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return buffer.getvalue()


def _triple(prefix: str, values: Iterable[float], axes: str = "xyz") -> dict[str, Any]:
    return {f"{prefix}_{a}": v for a, v in zip(axes, values)}


def _intensity_unit(study: StudyReport, lesion: LesionRecord) -> str | None:
    """``HU`` for CT, ``a.u.`` (the image's own units) otherwise; empty without intensities."""
    if lesion.mean_intensity is None:
        return None
    return study.intensity_unit or "a.u."


def lesion_row(study: StudyReport, lesion: LesionRecord) -> dict[str, Any]:
    """One ``lesions.csv`` row (vectors spread over ``_x/_y/_z`` or ``_i/_j/_k`` columns).

    Coordinates are patient LPS in mm, voxel indices ``(i, j, k)`` and slice numbers 0-based,
    dates ISO; intensities in ``intensity_unit`` (HU for CT).
    """
    row: dict[str, Any] = {"case_id": study.case_id, "study_date": study.study_date,
                           "laterality": study.laterality}  # fmt: skip
    data = lesion.model_dump()
    for key in ("lesion_id", "label", "label_name", "instance_id", "score", "n_voxels",
                "volume_mm3", "volume_nl", "longest_diameter_mm", "inplane_long_mm",
                "inplane_short_mm", "inplane_slice", "slice_first", "slice_last"):  # fmt: skip
        row[key] = data[key]
    row |= _triple("centroid_lps_mm", lesion.centroid_lps_mm)
    row |= _triple("bbox_voxel_min", lesion.bbox_voxel_min, "ijk")
    row |= _triple("bbox_voxel_max", lesion.bbox_voxel_max, "ijk")
    row |= _triple("bbox_lps_min_mm", lesion.bbox_lps_min_mm)
    row |= _triple("bbox_lps_max_mm", lesion.bbox_lps_max_mm)
    row |= {"mean_intensity": lesion.mean_intensity, "max_intensity": lesion.max_intensity,
            "intensity_unit": _intensity_unit(study, lesion),
            "etdrs_subfield": lesion.etdrs_subfield}  # fmt: skip
    return row


def cohort_rows(report: PatientReport) -> list[dict[str, Any]]:
    """``cohort.csv`` rows of one patient: one per study, with class totals and OCT summary."""
    rows = []
    for study in report.studies:
        row: dict[str, Any] = {
            "patient_id": report.patient_id, "case_id": study.case_id,
            "study_date": study.study_date, "laterality": study.laterality,
            "modality": study.modality, "status": study.status,
            "n_lesions": len(study.lesions) if study.status == "done" else None,
        }  # fmt: skip
        for total in study.totals:
            row[f"{total.label_name}_count"] = total.count
            row[f"{total.label_name}_volume_mm3"] = total.volume_mm3
            if total.volume_nl is not None:
                row[f"{total.label_name}_volume_nl"] = total.volume_nl
        if study.oct is not None:
            row["fovea_method"] = study.oct.fovea.method
            row["central_subfield_thickness_um"] = study.oct.central_subfield_thickness_um
        row |= {f"{e.label_name}_dice": e.dice for e in study.evaluation}
        row["error"] = study.error
        rows.append(row)
    return rows


def _fmt(value: Any, digits: int = 1) -> str:
    """A cell: ``–`` for missing or undefined (NaN, inf) numbers, else ``digits`` decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


MAX_LESION_ROWS = 40
"""Lesions listed in a study's HTML table (the largest); ``lesions.csv`` lists every one."""


def largest_lesions(
    lesions: Sequence[LesionRecord], n: int = MAX_LESION_ROWS
) -> list[LesionRecord]:
    """The ``n`` largest lesions, in lesion-id order (class, then size)."""
    keep = sorted(lesions, key=lambda les: -les.volume_mm3)[:n]
    return sorted(keep, key=lambda les: les.lesion_id)


def _subfield(name: str | None) -> str:
    return "–" if name is None else subfield_title(name)


@functools.cache
def _environment() -> Any:
    """The jinja2 environment of the report templates (jinja2 is imported on first use)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("medseg.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["plural"] = plural
    env.filters["subfield"] = _subfield
    env.filters["largest"] = largest_lesions
    env.filters["fovea_method"] = lambda method: FOVEA_METHOD_TITLES.get(method, method)
    return env


def template(name: str) -> Any:
    """A compiled report template (``report.html.j2``, ``index.html.j2``)."""
    return _environment().get_template(name)


def render_html(
    report: PatientReport,
    figures: Mapping[str, Sequence[FigureImage]],
    *,
    trend: FigureImage | None = None,
) -> str:
    """The self-contained HTML page of a patient report.

    Args:
        report: the patient report.
        figures: case id -> figures of that study (lesion overlays, ETDRS map, ...).
        trend: the longitudinal trend figure, if any.
    """
    summary = glance(report)
    return str(
        template("report.html.j2").render(
            report=report,
            g=summary,
            digits=1,
            scaled=lambda value: None if value is None else value * summary.scale,
            figures=figures,
            trend=trend,
            generated=report.provenance.report_created,
        )
    )


def write_patient_report(
    report: PatientReport,
    out_dir: PathLike,
    figures: Mapping[str, Sequence[FigureImage]] | None = None,
    *,
    folder_name: str | None = None,
) -> Path:
    """Write ``<out_dir>/<patient>/report.json``, ``lesions.csv`` and ``report.html``.

    Args:
        report: the patient report.
        out_dir: the report folder.
        figures: case id -> figures of that study.
        folder_name: the patient folder's name (default :func:`patient_folder_name`).

    Returns:
        The patient folder.
    """
    folder = Path(out_dir) / (folder_name or patient_folder_name(report.patient_id))
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "report.json", report.model_dump_json(indent=2) + "\n")
    rows = [lesion_row(s, les) for s in report.studies for les in s.lesions]
    columns = list(lesion_row(StudyReport(case_id=""), _EMPTY_LESION)) if not rows else None
    write_text_atomic(folder / "lesions.csv", csv_text(rows, columns))
    html = render_html(report, figures or {}, trend=trend_figure(report))
    write_text_atomic(folder / "report.html", html)
    return folder


def write_cohort_csv(rows: Sequence[Mapping[str, Any]], out_dir: PathLike) -> Path:
    """Write ``<out_dir>/cohort.csv`` (one row per patient study)."""
    return write_text_atomic(Path(out_dir) / COHORT_CSV, csv_text(rows))
