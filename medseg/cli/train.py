"""``medseg train WORKFLOW.yaml``: train a 2D/3D U-Net or Mask R-CNN on one fold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def train_command(
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML.", exists=True, dir_okay=False)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (default runs/<name>).")
    ] = None,
    fold: Annotated[
        int, typer.Option("--fold", min=0, help="Cross-validation fold to hold out.")
    ] = 0,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a workflow value: key.path=value.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from checkpoint_last.pt.")
    ] = False,
) -> None:
    """Train on the manifest's other folds and validate on --fold (plans first if needed)."""
    not_available("train")
