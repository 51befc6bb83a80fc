"""``medseg train WORKFLOW.yaml``: train a 2D/3D U-Net or Mask R-CNN on one fold."""

from __future__ import annotations

import math
import os
from typing import Annotated

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.cli._options import DeviceOpt, FoldOpt
from medseg.cli.plan import OutputOpt, SetOpt, WorkflowArg, print_plan


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def _fmt(value: float | None) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


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
) -> None:
    """Train on the manifest's other folds and validate on --fold (plans first if needed)."""
    from medseg.config.run import plan_run
    from medseg.training.loop import EpochStats, train

    main = int(os.environ.get("RANK", "0")) == 0
    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    planned = plan_run(workflow, overrides=overrides or [], run_dir=output, write=main)
    if main:
        print_plan(planned.resolved, planned.run_dir, planned.reused)
    epochs = planned.resolved.train.epochs
    with _console.make_progress(state.progress and main) as progress:
        task = progress.add_task(f"fold {fold}", total=epochs, status="")

        def on_iteration(step: int, total: int, loss: float) -> None:
            progress.update(task, status=f"it {step}/{total} loss {loss:.4f}")

        def on_epoch(stats: EpochStats) -> None:
            dice = stats.val.mean_dice if stats.val else None
            f1 = stats.val.lesion_f1 if stats.val else {}
            progress.update(
                task, completed=stats.epoch, status=f"loss {stats.train_loss:.4f} Dice {_fmt(dice)}"
            )
            lesion = " ".join(f"{k} {_fmt(v)}" for k, v in f1.items())
            _console.err.print(
                f"epoch {stats.epoch}/{stats.epochs}  loss {stats.train_loss:.4f}"
                f"  val Dice {_fmt(dice)}"
                + (f"  lesion F1 {lesion}" if lesion else "")
                + ("  *best*" if stats.best and dice is not None else "")
                + f"  {stats.seconds:.1f}s",
                highlight=False,
            )

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
        )
    if main:
        table = Table(title=f"trained {planned.resolved.name} fold {fold}")
        for column in (
            "epochs",
            "best epoch",
            "best val lesion F1" if planned.resolved.task.kind == "instance" else "best val Dice",
            "stopped",
            "minutes",
            "checkpoints",
        ):
            table.add_column(column)
        table.add_row(
            str(result.epochs_run),
            str(result.best_epoch),
            _fmt(result.best_dice),
            result.stopped,
            f"{result.seconds / 60:.1f}",
            str(result.fold_dir),
        )
        _console.out.print(table)
