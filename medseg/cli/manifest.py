"""``medseg manifest build|check``: scan folders -> validated dataset manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available

app = typer.Typer(
    help="Build and check dataset manifests from clinical scan folders.", no_args_is_help=True
)


@app.command("build")
def build_command(
    scan_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of DICOM series, NIfTI, NRRD/MHA, OCT or PNG stacks.",
            exists=True,
            file_okay=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Manifest JSON to write, e.g. data_manifests/NAME.json."
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Folder of label maps named by case id.", exists=True, file_okay=False
        ),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="CSV with columns case_id,image,label (explicit pairing).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option("--folds", min=1, help="Patient-level cross-validation folds.")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
) -> None:
    """Find scans, pair them with labels, split folds by patient, record every data problem."""
    not_available("manifest build")


@app.command("check")
def check_command(
    manifest: Annotated[Path, typer.Argument(help="Manifest JSON.", exists=True, dir_okay=False)],
) -> None:
    """Open every case: image/label geometry, label values, NaN/Inf, spacing. Exit 1 on errors."""
    not_available("manifest check")
