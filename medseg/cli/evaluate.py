"""``medseg evaluate PRED_DIR --ref REF -o EVAL_DIR``: voxel, surface and lesion metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from medseg.cli import _console
from medseg.text import plural


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """The evaluation table (means per class, pooled lesion counts) and skipped cases."""
    table = Table(title="evaluation: means over cases; lesions pooled")
    tolerance = summary.get("settings", {}).get("nsd_tolerance_mm")
    nsd = "NSD" if tolerance is None else f"NSD@{tolerance:g} mm"
    for column in ("class", "cases", "Dice", "HD95 mm", "ASSD mm", nsd, "lesion F1", "TP/FP/FN"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, entry in summary["classes"].items():
        metrics, lesions = entry["metrics"], entry.get("lesions")
        name = label if entry["name"] == label else f"{label} {entry['name']}"
        table.add_row(
            escape(name),
            str(metrics["dice"]["n"]),
            _fmt(metrics["dice"]["mean"]),
            _fmt(metrics["hd95_mm"]["mean"], 2),
            _fmt(metrics["assd_mm"]["mean"], 2),
            _fmt(metrics["nsd"]["mean"]),
            "-" if lesions is None else _fmt(lesions["f1"]),
            "-" if lesions is None else f"{lesions['tp']}/{lesions['fp']}/{lesions['fn']}",
        )
    _console.out.print(table)
    for problem in summary["skipped"]:
        _console.out.print(
            f"[yellow]{problem['status']}[/] {escape(problem['case_id'])}: "
            f"{escape(problem['reason'])}",
            highlight=False,
        )
    cases = summary["cases"]
    _console.out.print(
        f"{cases['evaluated']} of {plural(cases['total'], 'case')} evaluated, "
        f"{cases['skipped']} skipped, {cases['failed']} failed; results in {escape(str(out_dir))}",
        highlight=False,
    )


def evaluate_command(
    ctx: typer.Context,
    pred_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of predicted label maps (<case_id>.nii.gz, .nrrd, .seg.nrrd, .mha, "
            "DICOM SEG .dcm).",
            exists=True,
            file_okay=False,
        ),
    ],
    ref: Annotated[
        Path,
        typer.Option(
            "--ref",
            help="Reference manifest, folder of label maps (same formats) or nnU-Net dataset.",
            exists=True,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Evaluation folder.")],
    lesion_labels: Annotated[
        str | None,
        typer.Option(
            "--lesion-labels",
            help="Comma-separated label values or names whose lesions are matched. "
            "Default: the manifest's lesion_labels, else every foreground label.",
        ),
    ] = None,
    min_lesion_mm3: Annotated[
        float, typer.Option("--min-lesion-mm3", min=0.0, help="Ignore smaller lesions (mm³).")
    ] = 0.0,
    match_iou: Annotated[
        float,
        typer.Option(
            "--match-iou", min=0.0, max=1.0, help="Minimum IoU to match lesions; 0 = any overlap."
        ),
    ] = 0.1,
    nsd_tolerance_mm: Annotated[
        float, typer.Option("--nsd-tolerance-mm", min=0.0, help="NSD tolerance (mm).")
    ] = 1.0,
    connectivity: Annotated[
        int, typer.Option("--connectivity", help="Lesion connectivity: 6, 18 or 26.")
    ] = 26,
) -> None:
    """Dice, HD95, ASSD, NSD and lesion detection per case -> CSV, summary.json, summary.png.

    Exit code 1 when any case was skipped or failed.
    """
    from medseg.errors import ConfigError
    from medseg.evaluation.evaluate import EvaluationOptions
    from medseg.evaluation.folder import evaluate_folder
    from medseg.evaluation.outputs import load_summary

    if connectivity not in (6, 18, 26):
        raise ConfigError(f"--connectivity must be 6, 18 or 26, got {connectivity}")
    options = EvaluationOptions(
        nsd_tolerance_mm=nsd_tolerance_mm,
        min_iou=match_iou,
        connectivity=connectivity,
        min_lesion_mm3=min_lesion_mm3,
    )
    wanted = None if lesion_labels is None else [s for s in lesion_labels.split(",") if s.strip()]
    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    problems = 0
    with _console.make_progress(state.progress) as progress:
        task = progress.add_task("evaluating", total=None, status="")
        for result in evaluate_folder(pred_dir, ref, output, lesion_labels=wanted, options=options):
            problems += result.status != "ok"
            progress.update(task, total=result.total, advance=1, status=result.case_id)
    render_summary(load_summary(output), output)
    if problems:
        raise typer.Exit(1)
