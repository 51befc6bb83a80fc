"""``index.html``: the cohort report, one row per patient study linking to each patient's report.

Self-contained like the patient reports (inline CSS, no scripts, no external resources) and
narrow enough for a 1400 px window or a printed page: one column per class (lesions and total
volume in one cell), the agreement with the reference (Dice) when evaluated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg._version import __version__
from medseg.io.atomic import write_text_atomic
from medseg.text import plural
from medseg.types import PathLike

COHORT_INDEX = "index.html"


@dataclass(frozen=True)
class CohortColumns:
    """Which optional columns the cohort table has."""

    classes: list[str]
    dice: list[str]
    eyes: bool
    nanolitres: bool
    cst: bool


def cohort_columns(rows: Sequence[Mapping[str, Any]]) -> CohortColumns:
    """Class names (from ``<class>_count`` keys), evaluated classes, and whether eyes appear."""
    classes: dict[str, None] = {}
    dice: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.endswith("_count"):
                classes.setdefault(key.removesuffix("_count"), None)
            elif key.endswith("_dice"):
                dice.setdefault(key.removesuffix("_dice"), None)
    return CohortColumns(
        classes=list(classes),
        dice=list(dice),
        eyes=any(row.get("laterality") for row in rows),
        nanolitres=any(key.endswith("_volume_nl") for row in rows for key in row),
        cst=any(row.get("central_subfield_thickness_um") is not None for row in rows),
    )


def write_cohort_index(
    rows: Sequence[Mapping[str, Any]],
    folders: Mapping[str, str],
    out_dir: PathLike,
    *,
    notice: str | None = None,
) -> Path:
    """Write ``<out_dir>/index.html`` from the cohort rows.

    Args:
        rows: ``cohort.csv`` rows (one per patient study).
        folders: patient id -> the patient's report folder (relative to ``out_dir``).
        out_dir: the report folder.
        notice: shown above the table (e.g. that the model is a smoke run).
    """
    from medseg.reports.render import template

    columns = cohort_columns(rows)
    patients = len({r.get("patient_id") for r in rows})
    page = template("index.html.j2").render(
        rows=rows,
        folders=folders,
        columns=columns,
        counts=f"{plural(patients, 'patient')}, {plural(len(rows), 'study', 'studies')}",
        notice=notice,
        version=__version__,
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return write_text_atomic(Path(out_dir) / COHORT_INDEX, str(page))
