"""``medseg predict RUN_DIR INPUT... -o OUT_DIR``: batch segmentation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.cli._options import DeviceOpt, PseudonymKeyOpt, SpacingOpt, parse_spacing

if TYPE_CHECKING:
    from medseg.artifacts import CaseResult
    from medseg.inference.cases import CaseInput


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)


def _results_table(results: Sequence[CaseResult]) -> Table:
    table = Table(title="predictions")
    for column in ("case", "status", "seconds", "note"):
        table.add_column(column)
    for r in results:
        style = {"done": "green", "reused": "cyan", "partial": "yellow", "failed": "red"}[r.status]
        note = r.error or "; ".join(r.notes)
        table.add_row(r.case_id, f"[{style}]{r.status}[/]", f"{r.seconds:.1f}", note)
    return table


def chosen_folds(fold: list[int] | None, deprecated_folds: str | None) -> list[int] | None:
    """The folds to ensemble from ``--fold`` (repeatable) or the deprecated ``--folds 0,1``.

    ``--folds`` means a fold *count* in ``manifest build``; here it was a list, so it is kept
    one release as an alias that warns.
    """
    from medseg.errors import ConfigError

    if deprecated_folds is None:
        return list(fold) if fold else None
    _console.err.print(
        "[yellow]Warning:[/] predict --folds is deprecated (in `manifest build` --folds is a "
        "count); write --fold 0 --fold 1 instead.",
        highlight=False,
    )
    if fold:
        raise ConfigError("give --fold (repeatable) or the deprecated --folds, not both")
    try:
        return [int(v) for v in deprecated_folds.split(",") if v.strip()] or None
    except ValueError as err:
        raise ConfigError(
            f"--folds expects comma-separated integers, got {deprecated_folds!r}",
            hint="use --fold 0 --fold 1",
        ) from err


def predict_command(
    ctx: typer.Context,
    run_dir: Annotated[
        Path, typer.Argument(help="Trained run folder.", exists=True, file_okay=False)
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (NIfTI, NRRD, DICOM, PNG/JPEG/TIFF/BMP; channels as "
            "<case>_0000, <case>_0001 ...), folders of them or of DICOM series, or a manifest.",
            exists=True,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    tta: Annotated[
        bool | None,
        typer.Option("--tta/--no-tta", help="Flip test-time augmentation (default: workflow)."),
    ] = None,
    dicom_seg: Annotated[
        bool, typer.Option("--dicom-seg", help="Also write DICOM SEG for DICOM sources.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo cases already predicted.")
    ] = False,
    device: DeviceOpt = "auto",
    fold: Annotated[
        list[int] | None,
        typer.Option(
            "--fold",
            min=0,
            help="Fold whose model to use; repeat to ensemble: --fold 0 --fold 1 "
            "(default: every trained fold).",
        ),
    ] = None,
    deprecated_folds: Annotated[
        str | None,
        typer.Option("--folds", hidden=True, help="Deprecated alias of --fold: 0,1."),
    ] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    split: Annotated[
        str | None,
        typer.Option("--split", help="With a manifest: only cases of this split (train/test)."),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview/--no-preview", help="Write <case_id>.png overlays.")
    ] = True,
    pseudonymize: Annotated[
        bool,
        typer.Option(
            "--pseudonymize",
            help="Pseudonymous ids for scans found in folders (OUT_DIR/pseudonyms.csv).",
        ),
    ] = False,
    pseudonym_key: PseudonymKeyOpt = None,
    spacing: SpacingOpt = None,
) -> None:
    """Segment every case; write <case_id>.nii.gz (+ .seg.dcm, .png) and run_report.json."""
    from medseg.inference.batch import BatchOptions, predict_batch
    from medseg.inference.predictor import Predictor
    from medseg.run_folder import dist_info

    info = dist_info()  # under torchrun each rank takes its share; rank 0 talks
    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    predictor = Predictor.from_run(
        run_dir, folds=chosen_folds(fold, deprecated_folds), checkpoint=checkpoint, device=device
    )
    predictor.self_check()  # an unusable model or setting ends the batch here, not per case
    key = (pseudonym_key, pseudonymize)
    out_dir, cases = _cases(
        inputs,
        output,
        split,
        key,
        main=info.is_main,
        channels=predictor.resolved.plan.channels,
        spacing=parse_spacing(spacing),
    )
    options = BatchOptions(overwrite=overwrite, dicom_seg=dicom_seg, preview=preview, tta=tta)
    results = []
    with _console.make_progress(state.progress and info.is_main) as progress:
        task = progress.add_task("segmenting", total=len(info.shard(cases)), status="")
        for result in predict_batch(predictor, cases, out_dir, options, dist=info):
            results.append(result)
            progress.update(task, advance=1, status=f"{result.case_id} {result.status}")
    if info.is_main:
        _render(results, out_dir)
    if any(r.status in ("failed", "partial") for r in results):
        raise typer.Exit(1)


def _cases(
    inputs: list[Path],
    output: Path,
    split: str | None,
    pseudonym: tuple[str | None, bool],
    *,
    main: bool,
    channels: Sequence[str],
    spacing: tuple[float, float] | None,
) -> tuple[Path, list[CaseInput]]:
    """The output folder and the cases with the model's ``channels`` (pseudonymised when
    ``pseudonym`` = ``(key, on)`` asks; rank 0 writes the table)."""
    from medseg.inference.cases import cases_from_inputs
    from medseg.io.atomic import ensure_output_dir
    from medseg.manifest.pseudonym import resolve_key, write_table

    out_dir = ensure_output_dir(output)
    table: list[tuple[str, str, str, str]] = []
    key = resolve_key(pseudonym[0]) if pseudonym[1] else None
    cases = cases_from_inputs(
        inputs, split=split, pseudonym_key=key, table=table, channels=channels, spacing=spacing
    )
    if table and main:
        write_table(table, out_dir / "pseudonyms.csv")
    return out_dir, cases


def _render(results: Sequence[CaseResult], out_dir: Path) -> None:
    from medseg.artifacts import RunReport

    _console.out.print(_results_table(results))
    counts = RunReport.count(results)
    _console.out.print(
        f"{counts['done']} done, {counts['reused']} reused (already done), "
        f"{counts['partial']} partial (label map only), {counts['failed']} failed; "
        f"report: {out_dir / 'run_report.json'}"
    )
