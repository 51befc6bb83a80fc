"""``medseg predict RUN_DIR INPUT... -o OUT_DIR``: batch segmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)


def predict_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Trained run folder.", exists=True, file_okay=False)
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Image files, folders of DICOM series, or a manifest.", exists=True),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    tta: Annotated[
        bool, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")
    ] = False,
    dicom_seg: Annotated[
        bool, typer.Option("--dicom-seg", help="Also write DICOM SEG for DICOM sources.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo cases already predicted.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Segment every case; write <case_id>.nii.gz (+ .seg.dcm, .png) and run_report.json."""
    not_available("predict")
