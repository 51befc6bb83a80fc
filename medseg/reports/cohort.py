"""``index.html``: the cohort report, one row per patient study linking to each patient's report.

Self-contained like the patient reports (inline CSS, no scripts, no external resources).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg._version import __version__
from medseg.io.atomic import write_text_atomic
from medseg.types import PathLike

COHORT_INDEX = "index.html"
_COLUMNS = ("patient_id", "case_id", "study_date", "laterality", "modality", "status", "n_lesions")
_STYLE = """
body{font-family:system-ui,Arial,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,td:nth-child(2){text-align:left}
.failed{color:#b00020}
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # NaN -> empty
    return html.escape("" if value is None else str(value))


def _extra_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per-class totals and evaluation Dice, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.endswith(("_count", "_volume_mm3", "_volume_nl")) or (
                key.startswith("eval.") and key.endswith(".dice")
            ):
                seen.setdefault(key, None)
    return list(seen)


def write_cohort_index(
    rows: Sequence[Mapping[str, Any]], folders: Mapping[str, str], out_dir: PathLike
) -> Path:
    """Write ``<out_dir>/index.html`` from the cohort rows (``folders``: patient id -> folder)."""
    columns = [*_COLUMNS, *_extra_columns(rows)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = _cell(row.get(column))
            if column == "patient_id" and row.get("patient_id") in folders:
                value = (
                    f'<a href="{html.escape(folders[row["patient_id"]])}/report.html">{value}</a>'
                )
            cells.append(f"<td>{value}</td>")
        css = ' class="failed"' if row.get("status") == "failed" else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>medseg cohort report</title>"
        f"<style>{_STYLE}</style></head><body><h1>Cohort report</h1>"
        f"<p>{len({r.get('patient_id') for r in rows})} patients, {len(rows)} studies. "
        "Each patient links to its own report (lesion tables, figures, OCT ETDRS maps, trends).</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<p><small>medseg {html.escape(__version__)}</small></p></body></html>\n"
    )
    return write_text_atomic(Path(out_dir) / COHORT_INDEX, page)
