"""Per-patient measurement reports from predicted label maps (no torch, no MONAI).

Typical use (what ``medseg report`` does)::

    from medseg.reports import load_prediction_set, write_reports

    predictions = load_prediction_set("preds/", images="data_manifests/oct.json")
    for outcome in write_reports(predictions, "reports/", eval_dir="eval/"):
        print(outcome.case_id, outcome.status)

The building blocks are pure functions on :class:`~medseg.io.volume.Volume` objects:
:func:`measure_lesions` (per-lesion geometry), :func:`analyze_oct` (fluid per B-scan and ETDRS
subfield, fovea), :func:`measure_study` and :func:`build_patient_report` (the pydantic
:class:`PatientReport` written as ``report.json``), and :func:`write_patient_report` (JSON, CSV,
self-contained HTML).
"""

from __future__ import annotations

from medseg.reports.build import build_patient_report, measure_study
from medseg.reports.fovea import find_fovea
from medseg.reports.inputs import CaseSource, PredictionSet, load_prediction_set
from medseg.reports.longitudinal import change_table
from medseg.reports.measure import InstanceInfo, class_totals, measure_lesions
from medseg.reports.oct import OCTClasses, analyze_oct
from medseg.reports.pipeline import CaseOutcome, write_reports
from medseg.reports.render import render_html, write_cohort_csv, write_patient_report
from medseg.reports.schema import (
    REPORT_SCHEMA_VERSION,
    ChangeRow,
    ClassTotal,
    Fovea,
    LesionRecord,
    OCTAnalysis,
    PatientReport,
    Provenance,
    StudyReport,
    Subfield,
)

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "CaseOutcome",
    "CaseSource",
    "ChangeRow",
    "ClassTotal",
    "Fovea",
    "InstanceInfo",
    "LesionRecord",
    "OCTAnalysis",
    "OCTClasses",
    "PatientReport",
    "PredictionSet",
    "Provenance",
    "StudyReport",
    "Subfield",
    "analyze_oct",
    "build_patient_report",
    "change_table",
    "class_totals",
    "find_fovea",
    "load_prediction_set",
    "measure_lesions",
    "measure_study",
    "render_html",
    "write_cohort_csv",
    "write_patient_report",
    "write_reports",
]
