"""``medseg plan WORKFLOW.yaml``: dataset fingerprint and resolution of every ``auto`` value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


def plan_command(
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML.", exists=True, dir_okay=False)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (default runs/<name>).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a workflow value: key.path=value.")
    ] = None,
) -> None:
    """Fingerprint the dataset and write fingerprint.json and resolved_workflow.yaml."""
    not_available("plan")
