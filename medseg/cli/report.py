"""``medseg report PRED_DIR -o REPORT_DIR``: per-patient measurement reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medseg.cli import _console
from medseg.text import plural

if TYPE_CHECKING:
    from medseg.reports.pipeline import CaseOutcome


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def _summary(outcomes: Sequence[CaseOutcome], output: Path) -> None:
    table = Table(title="medseg report")
    for column in ("patient", "case", "status", "lesions", "seconds", "note"):
        table.add_column(column, justify="right" if column in ("lesions", "seconds") else "left")
    style = {"done": "green", "failed": "red", "not_predicted": "yellow"}
    for o in outcomes:
        table.add_row(
            escape(o.patient_id),
            escape(o.case_id),
            f"[{style.get(o.status, 'white')}]{o.status}[/]",
            "-" if o.n_lesions is None else str(o.n_lesions),
            f"{o.seconds:.1f}",
            escape(o.error or o.sr_error or ""),
        )
    _console.out.print(table)
    failed = sum(o.status == "failed" for o in outcomes)
    patients = len({o.patient_id for o in outcomes})
    srs = len({(o.patient_id, o.dicom_sr) for o in outcomes if o.dicom_sr is not None})
    no_sr = sum(o.sr_error is not None for o in outcomes)
    sr_text = (
        f", {plural(srs, 'DICOM SR')} written, {plural(no_sr, 'case')} without"
        if srs or no_sr
        else ""
    )
    _console.out.print(
        f"{plural(patients, 'patient')}, {plural(len(outcomes), 'case')}, {failed} failed"
        f"{sr_text}; "
        f"reports in {output}",
        highlight=False,
        markup=False,
    )


def report_command(
    ctx: typer.Context,
    pred_dir: Annotated[
        Path, typer.Argument(help="Folder of predictions.", exists=True, file_okay=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder.")],
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Manifest or folder of the source images.", exists=True),
    ] = None,
    eval_dir: Annotated[
        Path | None,
        typer.Option(
            "--eval", help="Evaluation folder (adds metrics when present).", file_okay=False
        ),
    ] = None,
    include_phi: Annotated[
        bool, typer.Option("--include-phi", help="Copy DICOM names and birth dates into reports.")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Worker processes (patients in parallel).")
    ] = 1,
    dicom_sr: Annotated[
        bool,
        typer.Option(
            "--dicom-sr",
            help="Also write <patient>/<study key>.sr.dcm (DICOM SR TID 1500 measurements), one "
            "per source study, next to copies of its cases' DICOM SEGs (predict --dicom-seg).",
        ),
    ] = False,
) -> None:
    """Lesion tables, OCT fluid by ETDRS subfield, HTML with figures, cohort.csv."""
    from medseg.reports import load_prediction_set, write_reports

    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    predictions = load_prediction_set(pred_dir, images=images)
    outcomes = []
    with _console.make_progress(state.progress) as progress:
        task = progress.add_task("reporting", total=len(predictions.cases), status="")
        for outcome in write_reports(
            predictions, output, eval_dir=eval_dir, include_phi=include_phi, jobs=jobs,
            dicom_sr=dicom_sr,
        ):  # fmt: skip
            outcomes.append(outcome)
            progress.update(task, advance=1, status=outcome.case_id)
    _summary(outcomes, output)
    if any(o.status == "failed" or o.sr_error for o in outcomes):
        raise typer.Exit(1)
