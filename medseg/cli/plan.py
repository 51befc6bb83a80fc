"""``medseg plan WORKFLOW.yaml``: dataset fingerprint and resolution of every ``auto`` value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medseg.cli import _console

WorkflowArg = Annotated[Path, typer.Argument(help="Workflow YAML.", exists=True, dir_okay=False)]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Run folder (default runs/<name>).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a workflow value: key.path=value (repeatable)."),
]


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


def print_plan(resolved: object, run_dir: Path, reused: bool) -> None:
    from medseg.config.plan import describe_plan
    from medseg.config.schema import ResolvedWorkflow

    assert isinstance(resolved, ResolvedWorkflow)
    table = Table(title=f"plan for {resolved.name}" + (" (up to date)" if reused else ""))
    table.add_column("item")
    table.add_column("value")
    for item, value in describe_plan(resolved):
        table.add_row(item, value)
    _console.out.print(table)
    _console.out.print(f"run folder: {run_dir} (fingerprint.json, resolved_workflow.yaml)")


def plan_command(
    workflow: WorkflowArg,
    output: OutputOpt = None,
    overrides: SetOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-plan even if the plan is up to date.")
    ] = False,
) -> None:
    """Fingerprint the dataset and write fingerprint.json and resolved_workflow.yaml."""
    from medseg.config.run import plan_run

    planned = plan_run(workflow, overrides=overrides or [], run_dir=output, force=force)
    print_plan(planned.resolved, planned.run_dir, planned.reused)
