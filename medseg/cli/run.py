"""``medseg run WORKFLOW.yaml``: plan -> train -> predict -> evaluate -> report in one command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from medseg.cli import _console
from medseg.cli._options import DeviceOpt, FoldOpt
from medseg.cli.plan import OutputOpt, SetOpt, WorkflowArg

if TYPE_CHECKING:
    from medseg.training.loop import EpochStats
    from medseg.workflow import StageResult


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def print_stage(s: StageResult) -> None:
    """One line per finished stage: name, ran / up to date / failed, seconds, what it did."""
    colour = {"failed": "red", "up to date": "dim"}.get(s.status, "green")
    _console.err.print(
        f"[bold]{s.stage:9s}[/] [{colour}]{s.status:10s}[/] {s.seconds:7.1f} s  {escape(s.detail)}",
        highlight=False,
    )


def print_epoch(e: EpochStats) -> None:
    """One line per training epoch: loss, validation Dice when validated, seconds."""
    dice = f"  val Dice {e.val.mean_dice:.3f}" if e.val else ""
    _console.err.print(
        f"{'':10s}epoch {e.epoch}/{e.epochs} loss {e.train_loss:.4f}{dice}  {e.seconds:.0f} s",
        highlight=False,
    )


def run_command(
    workflow: WorkflowArg,
    output: OutputOpt = None,
    fold: FoldOpt = 0,
    overrides: SetOpt = None,
    split: Annotated[
        str,
        typer.Option(
            "--split", help="Manifest split to segment and evaluate (else the --fold cases)."
        ),
    ] = "test",
    dicom_seg: Annotated[
        bool, typer.Option("--dicom-seg/--no-dicom-seg", help="DICOM SEG for DICOM sources.")
    ] = True,
    device: DeviceOpt = "auto",
) -> None:
    """Plan -> train -> predict -> evaluate -> report, skipping stages that are up to date.

    Trains one fold, segments the manifest's test cases (--split), evaluates and reports them.
    Rerun after an edit: the stages whose inputs changed run again, the others are skipped.
    Everything goes into the run folder (default runs/<name>): the plan, fold_K/, predictions/,
    evaluation/ and reports/ (reports/index.html).
    Exit code 1 when a case failed.
    """
    from medseg.cli.evaluate import render_summary
    from medseg.evaluation.outputs import load_summary
    from medseg.workflow import run_workflow

    result = run_workflow(
        workflow,
        overrides=overrides or [],
        run_dir=output,
        fold=fold,
        predict_split=split,
        dicom_seg=dicom_seg,
        device=device,
        on_stage=print_stage,
        on_epoch_end=print_epoch,
    )
    render_summary(load_summary(result.eval_dir), result.eval_dir)
    _console.out.print(
        f"run folder {escape(str(result.run_dir))}; report "
        f"{escape(str(result.report_dir / 'index.html'))}",
        highlight=False,
    )
    if any(s.status == "failed" for s in result.stages):
        raise typer.Exit(1)
