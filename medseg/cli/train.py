"""``medseg train WORKFLOW.yaml``: train a 2D/3D U-Net or Mask R-CNN on one fold."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.cli._options import DeviceOpt, FoldOpt
from medseg.cli.plan import OutputOpt, SetOpt, WorkflowArg, print_plan

if TYPE_CHECKING:
    from medseg.training.loop import EpochStats, TrainResult


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def _fmt(value: float | None) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


def _epoch_line(stats: EpochStats) -> str:
    """One line per epoch: loss, validation Dice, lesion F1, best mark, seconds."""
    dice = stats.val.mean_dice if stats.val else None
    f1 = stats.val.lesion_f1 if stats.val else {}
    lesion = " ".join(f"{k} {_fmt(v)}" for k, v in f1.items())
    return (
        f"epoch {stats.epoch}/{stats.epochs}  loss {stats.train_loss:.4f}"
        f"  val Dice {_fmt(dice)}"
        + (f"  lesion F1 {lesion}" if lesion else "")
        + ("  *best*" if stats.best and dice is not None else "")
        + f"  {stats.seconds:.1f}s"
    )


def _result_table(result: TrainResult, name: str, fold: int) -> Table:
    table = Table(title=f"trained {name} fold {fold}")
    best = {"mean_dice": "best val Dice", "lesion_f1": "best val lesion F1"}
    for column in (
        "epochs",
        "best epoch",
        best.get(result.best_metric, f"best val {result.best_metric}"),
        "stopped",
        "minutes",
    ):
        table.add_column(column)
    table.add_row(
        str(result.epochs_run),
        str(result.best_epoch),
        _fmt(result.best_score),
        result.stopped,
        f"{result.seconds / 60:.1f}",
    )
    return table


def print_checkpoints(fold_dir: Path) -> None:
    """The checkpoint paths in full on their own lines (a table column would cut them)."""
    from medseg.run_folder import BEST, LAST

    for name, tag in ((BEST, "best"), (LAST, "last")):
        _console.out.print(f"{tag} checkpoint: {fold_dir / name}", soft_wrap=True,
                           markup=False, highlight=False)  # fmt: skip


def train_command(
    ctx: typer.Context,
    workflow: WorkflowArg,
    output: OutputOpt = None,
    fold: FoldOpt = 0,
    overrides: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from checkpoint_last.pt.")
    ] = False,
    device: DeviceOpt = "auto",
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="First run the whole chain once on two cases (train step, validation, "
            "inversion, checkpoint) so that a failure shows within a minute.",
        ),
    ] = True,
) -> None:
    """Train on the manifest's other folds and validate on --fold (plans first if needed)."""
    from medseg.config.run import plan_run
    from medseg.run_folder import dist_info
    from medseg.training.loop import train

    main = dist_info().is_main
    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    planned = plan_run(workflow, overrides=overrides or [], run_dir=output, write=main)
    if main:
        print_plan(planned.resolved, planned.run_dir, planned.reused)
    with _console.make_progress(state.progress and main) as progress:
        task = progress.add_task(f"fold {fold}", total=planned.resolved.train.epochs, status="")

        def on_iteration(step: int, total: int, loss: float) -> None:
            progress.update(task, status=f"it {step}/{total} loss {loss:.4f}")

        def on_epoch(stats: EpochStats) -> None:
            dice = stats.val.mean_dice if stats.val else None
            status = f"loss {stats.train_loss:.4f} Dice {_fmt(dice)}"
            progress.update(task, completed=stats.epoch, status=status)
            _console.err.print(_epoch_line(stats), highlight=False)

        result = train(
            planned.resolved,
            planned.manifest,
            planned.run_dir,
            fold=fold,
            resume=resume,
            device=device,
            on_epoch_end=on_epoch if main else None,
            on_iteration=on_iteration if main else None,
            on_status=lambda s: progress.update(task, status=s),
            preflight=preflight,
        )
    if main:
        _console.out.print(_result_table(result, planned.resolved.name, fold))
        print_checkpoints(result.fold_dir)
