"""The "at a glance" summary of a patient report: per study and class, the lesion count, the
total volume and the change since the previous visit of the same series (eye).

Pure functions over a :class:`~medseg.reports.schema.PatientReport`; the HTML template renders
the rows. Volumes are in the report's display unit (nL for OCT, mm³ otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from medseg.reports.longitudinal import series_key, study_order_key
from medseg.reports.measure import NL_PER_MM3
from medseg.reports.schema import ChangeRow, PatientReport, StudyReport


@dataclass(frozen=True)
class ClassGlance:
    """One class of one study.

    Attributes:
        count: lesions of the class.
        volume: their total volume in the display unit.
        change: volume minus that of the previous visit (display unit); ``None`` at the first.
        change_pct: the change in percent of the previous volume; ``None`` when that was 0.
        count_change: lesions gained (+) or lost (-) since the previous visit.
    """

    count: int
    volume: float
    change: float | None = None
    change_pct: float | None = None
    count_change: int | None = None


@dataclass(frozen=True)
class GlanceRow:
    """One study: its classes (name -> :class:`ClassGlance`) and the previous visit's date."""

    study: StudyReport
    series: str
    classes: dict[str, ClassGlance]
    previous_date: str | None = None


@dataclass(frozen=True)
class Glance:
    """The summary table: unit, class names in order, and one row per study."""

    unit: str
    scale: float
    class_names: list[str]
    rows: list[GlanceRow]
    oct: bool
    cst: bool

    @property
    def latest(self) -> list[GlanceRow]:
        """The last measured study of each series (eye), in series order."""
        last = {row.series: row for row in self.rows if row.study.status == "done"}
        return list(last.values())


def _class_cell(
    study: StudyReport, name: str, change: ChangeRow | None, scale: float
) -> ClassGlance:
    total = next((t for t in study.totals if t.label_name == name), None)
    count = total.count if total else 0
    volume = (total.volume_mm3 if total else 0.0) * scale
    if change is None or change.volume_change_prev_mm3 is None:
        return ClassGlance(count, volume)
    return ClassGlance(count, volume, change.volume_change_prev_mm3 * scale,
                       change.volume_change_prev_pct, change.count_change_prev)  # fmt: skip


def glance(report: PatientReport) -> Glance:
    """Summary rows of a patient report, studies in series (eye) then date order."""
    oct_report = any(s.oct is not None or s.laterality for s in report.studies)
    nanolitres = any(t.volume_nl is not None for s in report.studies for t in s.totals)
    scale = NL_PER_MM3 if nanolitres else 1.0
    names = list(dict.fromkeys(t.label_name for s in report.studies for t in s.totals))
    changes = {(c.case_id, c.label_name): c for c in report.changes}
    rows: list[GlanceRow] = []
    last_date: dict[str, str] = {}
    for study in sorted(report.studies, key=study_order_key):
        series = series_key(study)
        cells = {}
        if study.status == "done":
            cells = {
                n: _class_cell(study, n, changes.get((study.case_id, n)), scale) for n in names
            }
        previous = last_date.get(series) if study.status == "done" else None
        rows.append(GlanceRow(study, series, cells, previous))
        if study.status == "done":
            last_date[series] = study.study_date or study.case_id
    cst = any(s.oct and s.oct.central_subfield_thickness_um is not None for s in report.studies)
    return Glance("nL" if nanolitres else "mm³", scale, names, rows, oct_report, bool(cst))
