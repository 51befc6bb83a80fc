"""``medseg report PRED_DIR -o REPORT_DIR``: per-patient measurement reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def report_command(
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
            "--eval", help="Evaluation folder (adds metrics).", exists=True, file_okay=False
        ),
    ] = None,
    include_phi: Annotated[
        bool, typer.Option("--include-phi", help="Copy DICOM names and birth dates into reports.")
    ] = False,
) -> None:
    """Lesion tables, OCT fluid by ETDRS subfield, HTML with figures, cohort.csv."""
    not_available("report")
