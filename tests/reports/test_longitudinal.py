"""The change table: per series (eye), per class, vs previous and vs baseline."""

from __future__ import annotations

import pytest

from medseg.reports.longitudinal import change_table
from medseg.reports.schema import ClassTotal, StudyReport


def _study(case_id: str, date: str | None, eye: str | None, **volumes: float) -> StudyReport:
    totals = [
        ClassTotal(label=n, label_name=name, count=int(v > 0), volume_mm3=v)
        for n, (name, v) in enumerate(volumes.items(), start=1)
    ]
    return StudyReport(case_id=case_id, study_date=date, laterality=eye, totals=totals)  # type: ignore[arg-type]


def test_two_visits_per_eye_vs_previous_and_baseline() -> None:
    studies = [
        _study("P_OD_3", "20240801", "OD", IRF=0.05, SRF=0.0),
        _study("P_OD_1", "20240101", "OD", IRF=0.2, SRF=0.0),
        _study("P_OD_2", "20240401", "OD", IRF=0.1, SRF=0.3),
        _study("P_OS_1", "20240101", "OS", IRF=0.4, SRF=0.0),  # one visit: no rows
        StudyReport(case_id="P_OD_x", study_date="20240201", laterality="OD", status="failed"),
    ]
    rows = change_table(studies)
    assert {r.series for r in rows} == {"OD"}
    assert [(r.case_id, r.label_name) for r in rows] == [
        ("P_OD_1", "IRF"), ("P_OD_1", "SRF"), ("P_OD_2", "IRF"), ("P_OD_2", "SRF"),
        ("P_OD_3", "IRF"), ("P_OD_3", "SRF")]  # fmt: skip
    base_irf, second_irf, second_srf, third_irf, third_srf = (
        rows[0],
        rows[2],
        rows[3],
        rows[4],
        rows[5],
    )
    assert base_irf.volume_change_prev_mm3 is None and base_irf.count_change_baseline is None
    assert second_irf.volume_change_prev_mm3 == pytest.approx(-0.1)
    assert second_irf.volume_change_prev_pct == pytest.approx(-50.0)
    assert second_srf.volume_change_prev_pct is None  # previous volume 0: no percentage
    assert second_srf.count_change_prev == 1
    assert third_irf.volume_change_prev_pct == pytest.approx(-50.0)
    assert third_irf.volume_change_baseline_mm3 == pytest.approx(-0.15)
    assert third_irf.volume_change_baseline_pct == pytest.approx(-75.0)
    assert third_srf.volume_change_prev_pct == pytest.approx(-100.0)


def test_single_study_and_unknown_dates() -> None:
    assert change_table([_study("A", "20240101", None, lesion=1.0)]) == []
    rows = change_table(
        [_study("B", None, None, lesion=2.0), _study("A", "20240101", None, lesion=1.0)]
    )
    assert [r.case_id for r in rows] == ["A", "B"]  # unknown dates sort last
    assert rows[1].volume_change_prev_pct == pytest.approx(100.0)
