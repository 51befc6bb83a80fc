"""``run_demo``: the whole toolkit on a synthetic OCT macular-edema cohort.

1. ``synth oct`` writes a DICOM cohort (Ophthalmic Tomography) with truth;
2. ``manifest build`` finds the scans, pairs labels, holds out test patients, splits folds;
3. ``run_workflow`` plans and trains the 2D U-Net of ``workflows/oct_fluid_unet2d.yaml`` with a
   CPU-sized budget, segments the test patients (NIfTI + DICOM SEG), evaluates them (Dice, HD95,
   lesion F1) and writes the per-patient reports and the cohort report.

``quick`` uses small scans and a few training iterations (about a minute: a smoke test).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import NotAvailableError
from medseg.text import plural
from medseg.types import PathLike
from medseg.workflow import StageResult, WorkflowRun, run_workflow

logger = logging.getLogger(__name__)
WORKFLOW = "oct_fluid_unet2d.yaml"


@dataclass(frozen=True)
class DemoSettings:
    patients: int
    size: str
    folds: int
    test_fraction: float
    overrides: tuple[str, ...]
    smoke: bool = False
    """A smoke run: the model is not expected to learn; reports and tables say so."""


SMOKE_NOTICE = (
    "Smoke run (medseg demo --quick): the model trained for about a minute on a few small "
    "synthetic scans and is not expected to segment; these numbers only show that every stage "
    "runs. Run `medseg demo` for a model that learns."
)


FULL = DemoSettings(
    patients=8,
    size="realistic",
    folds=4,
    test_fraction=0.25,
    overrides=("train.epochs=12", "train.val_interval=12", "train.max_minutes=5.5"),
)
QUICK = DemoSettings(
    patients=4,
    size="small",
    folds=2,
    test_fraction=0.25,
    overrides=(
        "preprocess.target_spacing=[0.033, 0.0121, 0.24]",
        "train.patch_size=[128, 96]",
        "train.batch_size=4",
        "train.epochs=2",
        "train.iterations_per_epoch=6",
        "train.val_interval=2",
        "train.max_minutes=1",
    ),
    smoke=True,
)


@dataclass
class DemoResult:
    out_dir: Path
    run: WorkflowRun
    metrics: list[dict[str, Any]]
    cohort_report: Path
    minutes: float
    steps: list[StageResult] = field(default_factory=list)
    smoke: bool = False


def shipped_workflow(name: str = WORKFLOW) -> Path:
    """The repository's workflow file (the demo runs from a source checkout)."""
    path = Path(__file__).resolve().parents[1] / "workflows" / name
    if not path.is_file():
        raise NotAvailableError(
            f"the demo needs workflows/{name} from the medseg source tree",
            hint="run it from a clone of the repository",
        )
    return path


def _timed(
    name: str,
    steps: list[StageResult],
    on_stage: Callable[[StageResult], None] | None,
    fn: Callable[[], str],
) -> None:
    start = time.perf_counter()
    detail = fn()
    result = StageResult(name, "ran", round(time.perf_counter() - start, 2), detail)
    steps.append(result)
    if on_stage is not None:
        on_stage(result)


def _synth(out: Path, settings: DemoSettings) -> str:
    from medseg.synth.api import synth_oct
    from medseg.synth.truth import Truth

    scans = out / "scans"
    truth_file = scans / "truth.json"
    if truth_file.is_file():
        truth = Truth.load(truth_file)
        if truth.size == settings.size and len(truth.patients) == settings.patients:
            return f"reused {len(truth.cases)} scans"
        shutil.rmtree(scans)
    truth = synth_oct(scans, patients=settings.patients, fmt="dicom", size=settings.size, seed=0)
    eyes = f"{plural(len(truth.patients), 'patient')}, {plural(len(truth.cases), 'eye')}"
    return f"{eyes} ({settings.size}, DICOM)"


def _manifest(out: Path, settings: DemoSettings) -> str:
    from medseg.manifest.build import build_manifest
    from medseg.manifest.check import check_manifest
    from medseg.manifest.schema import save_manifest

    path = out / "data_manifests" / "oct_demo.json"
    built = build_manifest(
        out / "scans" / "images",
        path,
        name="oct_demo",
        labels_dir=out / "scans" / "labels",
        n_folds=settings.folds,
        test_fraction=settings.test_fraction,
    )
    save_manifest(built.manifest, path)
    problems = [c.case_id for c in check_manifest(built.manifest) if not c.ok]
    test = sum(c.split == "test" for c in built.manifest.cases)
    return f"{plural(built.summary.cases, 'case')}, {test} held out for test" + (
        f"; check errors: {problems}" if problems else ""
    )


def metrics_rows(eval_dir: Path) -> list[dict[str, Any]]:
    """Per class: mean Dice, HD95 and pooled lesion F1 of the evaluated test cases."""
    summary = json.loads((eval_dir / "summary.json").read_text())
    rows = []
    for entry in summary["classes"].values():
        m, lesions = entry["metrics"], entry.get("lesions", {})
        rows.append(
            {
                "class": entry["name"],
                "cases": m["dice"]["n"],
                "dice": m["dice"]["mean"],
                "hd95_mm": m["hd95_mm"]["mean"],
                "lesion_f1": lesions.get("f1"),
            }
        )
    return rows


def fluid_dice(pred_dir: Path, manifest: Path) -> float:
    """Dice of all fluid (any foreground label) pooled over the predicted test cases."""
    import numpy as np

    from medseg.io.nifti import read_nifti
    from medseg.manifest.schema import load_manifest

    reference = load_manifest(manifest)
    overlap = total = 0
    for case in reference.cases:
        pred = read_nifti(pred_dir / f"{case.case_id}.nii.gz").array > 0
        ref = reference.read_label(case).array > 0
        overlap += int(np.logical_and(pred, ref).sum())
        total += int(pred.sum() + ref.sum())
    return 2 * overlap / total if total else float("nan")


def run_demo(
    out_dir: PathLike,
    *,
    quick: bool = False,
    on_stage: Callable[[StageResult], None] | None = None,
    on_epoch_end: Callable[[Any], None] | None = None,
) -> DemoResult:
    """Run the demo into ``out_dir`` (reusing what is already there and up to date)."""
    start = time.perf_counter()
    settings = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps: list[StageResult] = []
    _timed("synth", steps, on_stage, lambda: _synth(out, settings))
    _timed("manifest", steps, on_stage, lambda: _manifest(out, settings))
    workflow = out / "workflows" / WORKFLOW
    workflow.parent.mkdir(exist_ok=True)
    shutil.copy(shipped_workflow(), workflow)
    run = run_workflow(
        workflow,
        overrides=[f"manifest={out / 'data_manifests' / 'oct_demo.json'}", *settings.overrides],
        run_dir=out / "run",
        on_stage=on_stage,
        on_epoch_end=on_epoch_end,
        report_notice=SMOKE_NOTICE if settings.smoke else None,
    )
    steps += run.stages
    rows = metrics_rows(run.eval_dir)
    rows.append(
        {
            "class": "all fluid",
            "cases": rows[0]["cases"] if rows else 0,
            "dice": fluid_dice(run.pred_dir, run.run_dir / "predicted_cases.json"),
            "hd95_mm": None,
            "lesion_f1": None,
        }
    )
    minutes = (time.perf_counter() - start) / 60
    return DemoResult(out, run, rows, run.report_dir / "index.html", minutes, steps, settings.smoke)
