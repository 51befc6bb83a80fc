"""``medseg evaluate PRED_DIR --ref REF -o EVAL_DIR``: voxel, surface and lesion metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)


def evaluate_command(
    pred_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of predicted label maps (<case_id>.nii.gz).", exists=True, file_okay=False
        ),
    ],
    ref: Annotated[
        Path, typer.Option("--ref", help="Reference manifest or folder of label maps.", exists=True)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Evaluation folder.")],
) -> None:
    """Dice, HD95, ASSD, NSD and lesion detection per case -> CSV, summary.json, summary.png."""
    not_available("evaluate")
