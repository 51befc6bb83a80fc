"""``medseg synth oct|ct OUT_DIR``: write synthetic scans with known truth (``truth.json``);
``medseg synth examples``: the data and manifests of every shipped workflow."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from medseg.cli import _console
from medseg.text import plural

if TYPE_CHECKING:
    from medseg.examples import ExampleResult

app = typer.Typer(
    help="Write synthetic OCT or CT scans (real DICOM / NIfTI / PNG files) with truth.json; "
    "'synth examples' writes the data of every shipped workflow.",
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


@app.command("examples")
def synth_examples_command(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the scans go (default: $MEDSEG_EXAMPLE_DATA, else "
            "~/.cache/medseg/examples).",
            file_okay=False,
        ),
    ] = None,
    manifests: Annotated[
        Path,
        typer.Option(
            "--manifests",
            help="Where the manifests go: the repository's data_manifests/.",
            file_okay=False,
        ),
    ] = Path("data_manifests"),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this example (repeatable): its manifest name."),
    ] = None,
    size: Annotated[
        Size | None, typer.Option("--size", help="One grid preset for all (tiny: tests).")
    ] = None,
) -> None:
    """The example data and manifests every shipped workflow needs (run from the repository root).

    Scans go outside the repository (--data-dir).
    Manifests data_manifests/<name>.json point at them (absolute data_root; git-ignored).
    Scans already written with the same settings are reused.
    """
    from medseg.examples import default_data_dir, make_examples, manifests_used_by

    if not (manifests.resolve().parent / "workflows").is_dir():
        _console.err.print(
            f"[yellow]note:[/] no workflows/ folder beside {manifests}: the shipped workflows "
            "read the manifests in data_manifests/ of the repository (run this from its root)",
            highlight=False,
        )
    used = manifests_used_by(manifests.resolve().parent / "workflows")
    folder = data_dir or default_data_dir()
    table = Table(title=f"example data: manifests in {manifests}/, scans in {folder}/")
    table.add_column("manifest", no_wrap=True, min_width=20)
    table.add_column("used by")
    table.add_column("scans")
    table.add_column("cases", justify="right")

    def on_example(r: ExampleResult) -> None:
        s = r.spec
        table.add_row(
            r.manifest.name,
            "\n".join(used.get(r.manifest.name, [])) or "-",
            f"{s.kind} {s.size} {s.fmt}, {s.patients} patients"
            + (" (reused)" if r.reused else f" ({r.seconds:.0f} s)"),
            f"{r.cases}, {r.test_cases} test",
        )

    make_examples(
        folder,
        manifests,
        names=only or None,
        size=None if size is None else size.value,
        on_example=on_example,
    )
    _console.out.print(table)
