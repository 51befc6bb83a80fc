"""Longitudinal change of one patient: per class lesion count and total volume across studies.

Studies are grouped into *series* (one per OCT eye, one for everything else), ordered by study
date, and each study is compared with the previous one and with the first (baseline) of its
series. Percentages are ``null`` when the reference volume is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from medseg.reports.schema import ChangeRow, StudyReport


def series_key(study: StudyReport) -> str:
    """The series a study belongs to: its eye for OCT, ``""`` otherwise."""
    return study.laterality or ""


def study_order_key(study: StudyReport) -> tuple[str, str, str]:
    """Sort key: series, then study date (unknown dates last), then case id."""
    return (series_key(study), study.study_date or "99999999", study.case_id)


def _pct(change: float, reference: float) -> float | None:
    return None if reference <= 0 else 100.0 * change / reference


def _class_values(study: StudyReport, names: Sequence[str]) -> dict[str, tuple[int, float]]:
    found = {t.label_name: (t.count, t.volume_mm3) for t in study.totals}
    return {name: found.get(name, (0, 0.0)) for name in names}


def _series_rows(series: str, studies: list[StudyReport], names: list[str]) -> list[ChangeRow]:
    rows: list[ChangeRow] = []
    baseline = _class_values(studies[0], names)
    previous: dict[str, tuple[int, float]] | None = None
    for study in studies:
        current = _class_values(study, names)
        for name in names:
            count, volume = current[name]
            row = ChangeRow(series=series, case_id=study.case_id, study_date=study.study_date,
                            label_name=name, count=count, volume_mm3=volume)  # fmt: skip
            if previous is not None:
                (prev_count, prev_volume), (base_count, base_volume) = (
                    previous[name],
                    baseline[name],
                )
                row.count_change_prev = count - prev_count
                row.volume_change_prev_mm3 = volume - prev_volume
                row.volume_change_prev_pct = _pct(volume - prev_volume, prev_volume)
                row.count_change_baseline = count - base_count
                row.volume_change_baseline_mm3 = volume - base_volume
                row.volume_change_baseline_pct = _pct(volume - base_volume, base_volume)
            rows.append(row)
        previous = current
    return rows


def change_table(studies: Sequence[StudyReport]) -> list[ChangeRow]:
    """Change rows for every series with at least two measured studies.

    Args:
        studies: the patient's studies (any order); failed or not predicted ones are ignored.

    Returns:
        One :class:`ChangeRow` per series, study and class (classes named in any study's totals;
        a class missing from a study counts as 0 lesions, 0 mm³). Empty for a single study.
    """
    done = sorted((s for s in studies if s.status == "done"), key=study_order_key)
    names = list(dict.fromkeys(t.label_name for s in done for t in s.totals))
    groups: dict[str, list[StudyReport]] = {}
    for study in done:
        groups.setdefault(series_key(study), []).append(study)
    rows: list[ChangeRow] = []
    for series, members in groups.items():
        if len(members) >= 2:
            rows.extend(_series_rows(series, members, names))
    return rows
