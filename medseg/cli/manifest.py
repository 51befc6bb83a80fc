"""``medseg manifest build|check|import|export``: scan folders <-> validated dataset manifests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.cli._options import PseudonymKeyOpt, SpacingOpt, parse_spacing
from medseg.text import plural

if TYPE_CHECKING:
    from medseg.manifest.schema import Case

app = typer.Typer(help="Build, check, import and export dataset manifests.", no_args_is_help=True)


def _parse_label_names(text: str | None) -> dict[int, str] | None:
    from medseg.errors import ConfigError

    if not text:
        return None
    try:
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {int(k): v.strip() for k, v in pairs}
    except ValueError as err:
        raise ConfigError(f"--label-names expects 1=name,2=name, got {text!r}") from err


def _parse_ints(text: str | None, option: str) -> list[int] | None:
    from medseg.errors import ConfigError

    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"{option} expects comma-separated integers, got {text!r}") from err


def _build_tables(result: object) -> None:
    from medseg.manifest.build import BuildResult

    assert isinstance(result, BuildResult)
    s = result.summary
    table = Table(title=f"manifest {result.manifest.name}")
    for column in ("files", "patients", "studies", "DICOM series", "cases", "labelled", "skipped"):
        table.add_column(column, justify="right")
    table.add_row(
        *map(
            str,
            (
                s.files_seen,
                s.patients,
                s.studies,
                s.dicom_series,
                s.cases,
                s.labelled,
                len(s.skipped),
            ),
        )
    )
    _console.out.print(table)
    if s.skipped:
        skipped = Table(title="skipped")
        skipped.add_column("path")
        skipped.add_column("reason")
        for item in s.skipped:
            skipped.add_row(item.path, item.reason)
        _console.out.print(skipped)
    _warning_table(result.manifest.cases)


def _warning_table(cases: Sequence[Case]) -> None:
    """Case warnings; a warning shared by more than 5 cases is one row with the count."""
    from collections import Counter

    warned = [(c.case_id, i) for c in cases for i in c.issues if i.severity != "info"]
    if not warned:
        return
    counts = Counter((i.code, i.message) for _, i in warned)
    issues = Table(title="case warnings")
    for column in ("case", "code", "message"):
        issues.add_column(column)
    shown: set[tuple[str, str]] = set()
    for case_id, issue in warned:
        key = (issue.code, issue.message)
        if counts[key] <= 5:
            issues.add_row(case_id, issue.code, issue.message)
        elif key not in shown:
            issues.add_row(f"{counts[key]} cases", issue.code, issue.message)
            shown.add(key)
    _console.out.print(issues)


@app.command("build")
def build_command(
    scan_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of DICOM series, NIfTI, NRRD/MHA, OCT, PNG stacks or 2D images "
            "(PNG/JPEG/TIFF/BMP).",
            exists=True,
            file_okay=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Manifest JSON to write, e.g. data_manifests/NAME.json."
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Folder of label maps named by case id (see README).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="CSV image,label[,case_id,patient_id,study_date,laterality].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option("--folds", min=1, help="Patient-level cross-validation folds.")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction", min=0.0, max=0.95, help="Fraction of patients held out as test."
        ),
    ] = 0.0,
    name: Annotated[
        str | None, typer.Option("--name", help="Manifest name (default: file stem).")
    ] = None,
    label_names: Annotated[
        str | None,
        typer.Option("--label-names", help="e.g. 1=IRF,2=SRF (default: labels.json in --labels)."),
    ] = None,
    lesion_labels: Annotated[
        str | None, typer.Option("--lesion-labels", help="Label values that are lesions, e.g. 1,2.")
    ] = None,
    patient_pattern: Annotated[
        str | None,
        typer.Option("--patient-pattern", help="Regex with (?P<patient>...) for file-based cases."),
    ] = None,
    pseudonymize: Annotated[
        bool,
        typer.Option(
            "--pseudonymize",
            help="Replace patient ids by keyed hashes (table beside the manifest).",
        ),
    ] = False,
    pseudonym_key: PseudonymKeyOpt = None,
    spacing: SpacingOpt = None,
) -> None:
    """Find scans, pair them with labels, split folds by patient, record every data problem."""
    from medseg.manifest import pseudonym
    from medseg.manifest.build import build_manifest
    from medseg.manifest.schema import save_manifest

    result = build_manifest(
        scan_dir,
        output,
        name=name,
        labels_dir=labels,
        pairs_csv=pairs,
        n_folds=folds,
        seed=seed,
        test_fraction=test_fraction,
        label_names=_parse_label_names(label_names),
        lesion_labels=_parse_ints(lesion_labels, "--lesion-labels"),
        patient_pattern=patient_pattern,
        pseudonym_key=pseudonym.resolve_key(pseudonym_key) if pseudonymize else None,
        pixel_spacing_mm=parse_spacing(spacing),
    )
    save_manifest(result.manifest, output)
    _build_tables(result)
    _console.out.print(f"wrote {output}")
    if result.pseudonyms:
        table = output.with_name(output.name.removesuffix(".json") + pseudonym.TABLE_SUFFIX)
        pseudonym.write_table(result.pseudonyms, table)
        _console.out.print(
            f"pseudonym table (identifies patients; store it like the scans): {table}"
        )


@app.command("check")
def check_command(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="Manifest JSON.", exists=True, dir_okay=False)],
    tolerance_mm: Annotated[
        float,
        typer.Option("--tolerance-mm", min=0.0, help="Allowed image/label grid displacement."),
    ] = 1e-3,
) -> None:
    """Open every case: image/label geometry, label values, NaN/Inf, spacing. Exit 1 on errors."""
    from medseg.manifest.check import check_manifest
    from medseg.manifest.schema import load_manifest

    loaded = load_manifest(manifest)
    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    problems = Table(title=f"problems in {manifest.name}")
    for column in ("case", "severity", "code", "message"):
        problems.add_column(column)
    n_errors = n_cases = 0
    with _console.make_progress(state.progress) as progress:
        task = progress.add_task("checking", total=len(loaded.cases), status="")
        for result in check_manifest(loaded, tolerance_mm=tolerance_mm):
            n_cases += 1
            n_errors += not result.ok
            progress.update(task, advance=1, status=result.case_id)
            for issue in result.issues:
                style = "red" if issue.severity == "error" else "yellow"
                problems.add_row(
                    result.case_id, f"[{style}]{issue.severity}[/]", issue.code, issue.message
                )
    if problems.row_count:
        _console.out.print(problems)
    _console.out.print(
        f"{plural(n_cases, 'case')} checked: {n_cases - n_errors} ok, {n_errors} with errors"
    )
    if n_errors:
        raise typer.Exit(1)


def _preprocessed_option(help_text: str) -> Any:
    return typer.Option(
        "--preprocessed",
        envvar="nnUNet_preprocessed",
        help=help_text + " Default: $nnUNet_preprocessed.",
        file_okay=False,
    )


@app.command("import")
def import_command(
    dataset_dir: Annotated[
        Path,
        typer.Argument(
            help="MSD or nnU-Net v2 dataset folder (with dataset.json).",
            exists=True,
            file_okay=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest JSON to write.")],
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            min=1,
            help="Patient-level folds when there is no splits_final.json "
            "(default: 5, or fewer when there are fewer labelled patients).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
    preprocessed: Annotated[
        Path | None,
        _preprocessed_option(
            "nnU-Net preprocessed root: splits_final.json is read from there "
            "(DIR/<dataset folder name>/) first, then from the dataset folder."
        ),
    ] = None,
) -> None:
    """Turn an MSD / nnU-Net dataset.json layout into a manifest (folds from splits_final.json)."""
    from medseg.manifest.msd import import_dataset
    from medseg.manifest.schema import save_manifest

    result = import_dataset(
        dataset_dir, output, n_folds=folds, seed=seed, preprocessed_root=preprocessed
    )
    save_manifest(result.manifest, output)
    _console.out.print(
        f"wrote {output}: {plural(len(result.manifest.cases), 'case')}; {result.folds_note}",
        markup=False,
    )


@app.command("export")
def export_command(
    manifest: Annotated[Path, typer.Argument(help="Manifest JSON.", exists=True, dir_okay=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="nnU-Net v2 dataset folder to create, e.g. Dataset001_Name."
        ),
    ],
    preprocessed: Annotated[
        Path | None,
        _preprocessed_option(
            "nnU-Net preprocessed root: splits_final.json is also written to "
            "DIR/<dataset folder name>/, where nnU-Net's trainer reads it."
        ),
    ] = None,
) -> None:
    """Write the manifest's cases as an nnU-Net v2 dataset (NIfTI + dataset.json + splits)."""
    from medseg.manifest.msd import export_nnunet
    from medseg.manifest.schema import load_manifest

    result = export_nnunet(load_manifest(manifest), output, preprocessed_root=preprocessed)
    _console.out.print(f"wrote {result.dataset_dir}", markup=False)
    for path in result.splits_files:
        _console.out.print(f"folds: {path}", markup=False)
    if len(result.splits_files) == 1:
        _console.out.print(
            "nnU-Net copies splits_final.json into $nnUNet_preprocessed/"
            f"{result.dataset_dir.name}/ when planning (nnU-Net 2.8); if that folder exists "
            "already, pass --preprocessed or copy it there",
            markup=False,
        )
    for warning in result.warnings:
        _console.out.print(f"[yellow]warning[/]: {warning}")
