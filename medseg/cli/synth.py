"""``medseg synth oct|ct OUT_DIR``: write synthetic scans with known truth (``truth.json``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.text import plural

app = typer.Typer(
    help="Write synthetic OCT or CT scans (real DICOM / NIfTI / PNG files) with truth.json.",
    no_args_is_help=True,
)


class OCTFormat(str, Enum):
    dicom = "dicom"
    nifti = "nifti"
    png = "png"


class CTFormat(str, Enum):
    dicom = "dicom"
    nifti = "nifti"


class Size(str, Enum):
    tiny = "tiny"
    small = "small"
    realistic = "realistic"


OutDir = Annotated[Path, typer.Argument(help="Output folder (created).", file_okay=False)]
Patients = Annotated[int, typer.Option("--patients", "-n", min=1, help="Number of patients.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; same seed, same pixel data.")]
Visits = Annotated[int, typer.Option("--visits", min=1, help="Studies per patient (follow-ups).")]
SizeOpt = Annotated[
    Size, typer.Option("--size", help="Grid preset: tiny (tests), small, realistic.")
]


def _summary(truth_path: Path, truth: object) -> None:
    from medseg.synth.truth import Truth

    assert isinstance(truth, Truth)
    table = Table(
        title=f"synthetic {truth.kind.upper()} ({truth.format}, {truth.size}, seed {truth.seed})"
    )
    lesion_names = [truth.labels[str(v)] for v in truth.lesion_labels]
    for column in ("case", "eye", "study", "shape", "spacing mm", *lesion_names):
        table.add_column(column, justify="right" if column in lesion_names else "left")
    for case in truth.cases:
        counts = [sum(1 for les in case.lesions if les.label == v) for v in truth.lesion_labels]
        table.add_row(
            case.case_id,
            case.laterality or "-",
            case.study_date,
            "x".join(map(str, case.shape)),
            " x ".join(f"{s:.4g}" for s in case.spacing_mm),
            *[str(c) for c in counts],
        )
    _console.out.print(table)
    _console.out.print(
        f"{plural(len(truth.patients), 'patient')}, {plural(len(truth.cases), 'case')}; "
        f"truth: {truth_path}"
    )


@app.command("oct")
def synth_oct_command(
    ctx: typer.Context,
    out_dir: OutDir,
    patients: Patients = 4,
    fmt: Annotated[
        OCTFormat, typer.Option("--format", help="dicom (Ophthalmic Tomography), nifti or png.")
    ] = OCTFormat.dicom,
    seed: Seed = 0,
    size: SizeOpt = Size.small,
    visits: Visits = 1,
    retina_label: Annotated[
        bool, typer.Option("--retina-label", help="Also label the retina as 3.")
    ] = False,
) -> None:
    """Synthetic macular OCT: layered retina, fovea, IRF (label 1) and SRF (label 2) pockets."""
    from medseg.synth.api import synth_oct

    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    with _console.make_progress(state.progress) as progress:
        task = progress.add_task("writing OCT", total=None, status="")
        truth = synth_oct(
            out_dir,
            patients=patients,
            fmt=fmt.value,
            seed=seed,
            size=size.value,
            visits=visits,
            retina_label=retina_label,
            on_case=lambda case: progress.update(task, advance=1, status=case.case_id),
        )
    _summary(out_dir / "truth.json", truth)


@app.command("ct")
def synth_ct_command(
    ctx: typer.Context,
    out_dir: OutDir,
    patients: Patients = 3,
    fmt: Annotated[
        CTFormat, typer.Option("--format", help="dicom (one CT file per slice) or nifti.")
    ] = CTFormat.dicom,
    seed: Seed = 0,
    size: SizeOpt = Size.small,
    visits: Visits = 1,
) -> None:
    """Synthetic CT: body, spine, organ (label 1) and lesions (label 2) of known volume."""
    from medseg.synth.api import synth_ct

    state = ctx.obj if isinstance(ctx.obj, _console.CLIState) else _console.CLIState()
    with _console.make_progress(state.progress) as progress:
        task = progress.add_task("writing CT", total=None, status="")
        truth = synth_ct(
            out_dir,
            patients=patients,
            fmt=fmt.value,
            seed=seed,
            size=size.value,
            visits=visits,
            on_case=lambda case: progress.update(task, advance=1, status=case.case_id),
        )
    _summary(out_dir / "truth.json", truth)
