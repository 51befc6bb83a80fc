"""``run_workflow``: plan -> train -> predict -> evaluate -> report, skipping up-to-date stages.

Each stage that finishes writes a stamp in ``<run_dir>/stages.json``: the signature of its inputs
(hashes of the workflow, manifest, checkpoint, run report, evaluation summary). A stage whose
inputs are unchanged and whose outputs still exist is skipped; changing anything upstream reruns
it and everything after it. The demo is built on this function.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.config.run import PlannedRun, plan_run
from medseg.errors import DataError
from medseg.io.atomic import file_sha256, write_json_atomic
from medseg.types import PathLike

logger = logging.getLogger(__name__)
STAGES = ("plan", "train", "predict", "evaluate", "report")
STAMPS = "stages.json"


@dataclass
class StageResult:
    stage: str
    status: str  # ran | up to date | failed
    seconds: float
    detail: str = ""


@dataclass
class WorkflowRun:
    """Where everything went, and what each stage did."""

    run_dir: Path
    pred_dir: Path
    eval_dir: Path
    report_dir: Path
    stages: list[StageResult] = field(default_factory=list)


def _sha(path: Path) -> str:
    return file_sha256(path) if path.is_file() else "missing"


def _signature(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Stamps:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STAMPS
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def fresh(self, stage: str, signature: str, outputs: Sequence[Path]) -> bool:
        return self.data.get(stage) == signature and all(p.exists() for p in outputs)

    def record(self, stage: str, signature: str) -> None:
        self.data[stage] = signature
        write_json_atomic(self.path, self.data)

    def forget_after(self, stage: str) -> None:
        for later in STAGES[STAGES.index(stage) + 1 :]:
            self.data.pop(later, None)


def _predict_cases(planned: PlannedRun, fold: int, split: str) -> list[Any]:
    from medseg.inference.cases import CaseInput

    manifest = planned.manifest
    chosen = [c for c in manifest.cases if c.split == split] or [
        c for c in manifest.cases if c.fold == fold
    ]
    if not chosen:
        raise DataError(f"no {split} cases and no cases in fold {fold} to predict")
    channels = manifest.channels
    return [
        CaseInput(
            c.case_id,
            c.images[channels[0]],
            manifest.root,
            c.patient_id,
            c.study_date,
            c.laterality,
            c.modality,
            channels=[c.images[ch] for ch in channels] if len(channels) > 1 else [],
        )
        for c in chosen
    ]


def _reference_manifest(planned: PlannedRun, case_ids: set[str], path: Path) -> Path:
    """A manifest of only the predicted cases (what ``evaluate`` and ``report`` read)."""
    subset = planned.manifest.model_copy(
        update={"cases": [c for c in planned.manifest.cases if c.case_id in case_ids]}
    )
    subset = subset.model_copy(update={"data_root": str(planned.manifest.root)})
    from medseg.manifest.schema import save_manifest

    save_manifest(subset, path)
    return path


@contextlib.contextmanager
def _stage(
    results: list[StageResult], name: str, on_stage: Callable[[StageResult], None] | None
) -> Iterator[StageResult]:
    result = StageResult(name, "ran", 0.0)
    start = time.perf_counter()
    yield result
    result.seconds = round(time.perf_counter() - start, 2)
    results.append(result)
    logger.debug("stage %s: %s (%.1f s)", name, result.status, result.seconds)
    if on_stage is not None:
        on_stage(result)


def run_workflow(
    workflow_file: PathLike,
    *,
    overrides: Sequence[str] = (),
    run_dir: PathLike | None = None,
    fold: int = 0,
    predict_split: str = "test",
    dicom_seg: bool = True,
    device: str = "auto",
    on_stage: Callable[[StageResult], None] | None = None,
    on_epoch_end: Callable[[Any], None] | None = None,
) -> WorkflowRun:
    """Run every stage of a workflow into ``run_dir`` (``predictions/``, ``evaluation/``,
    ``reports/`` inside it), skipping stages whose inputs did not change."""
    from medseg.evaluation.folder import evaluate_folder
    from medseg.inference.batch import REPORT, BatchOptions, predict_cases
    from medseg.inference.predictor import Predictor
    from medseg.reports import load_prediction_set, write_reports
    from medseg.training.checkpoint import BEST
    from medseg.training.loop import train

    results: list[StageResult] = []
    with _stage(results, "plan", on_stage) as stage:
        planned = plan_run(workflow_file, overrides=overrides, run_dir=run_dir)
        stage.status = "up to date" if planned.reused else "ran"
    folder = planned.run_dir
    run = WorkflowRun(
        folder, folder / "predictions", folder / "evaluation", folder / "reports", results
    )
    stamps = _Stamps(folder)
    fold_dir = folder / f"fold_{fold}"
    with _stage(results, "train", on_stage) as stage:
        p = planned.resolved.plan
        sig = _signature(p.workflow_sha256, p.manifest_sha256, p.fingerprint_sha256, fold)
        if stamps.fresh("train", sig, [fold_dir / BEST]):
            stage.status = "up to date"
        else:
            stamps.forget_after("plan")
            if fold_dir.exists():
                import shutil

                shutil.rmtree(fold_dir)
            outcome = train(
                planned.resolved,
                planned.manifest,
                folder,
                fold=fold,
                device=device,
                on_epoch_end=on_epoch_end,
            )
            stage.detail = (
                f"best validation Dice {outcome.best_dice:.4f} at epoch {outcome.best_epoch}; "
                f"{outcome.stopped}"
            )
            stamps.record("train", sig)
    cases = _predict_cases(planned, fold, predict_split)
    with _stage(results, "predict", on_stage) as stage:
        sig = _signature(_sha(fold_dir / BEST), sorted(c.case_id for c in cases), dicom_seg)
        if stamps.fresh("predict", sig, [run.pred_dir / REPORT]):
            stage.status = "up to date"
        else:
            stamps.forget_after("train")
            predictor = Predictor.from_run(folder, folds=[fold], device=device)
            done = list(
                predict_cases(
                    predictor,
                    cases,
                    run.pred_dir,
                    BatchOptions(overwrite=True, dicom_seg=dicom_seg),
                )
            )
            failed = [r.case_id for r in done if r.status == "failed"]
            stage.detail = f"{len(done) - len(failed)} cases segmented" + (
                f", failed: {failed}" if failed else ""
            )
            stage.status = "failed" if failed else "ran"
            stamps.record("predict", sig)
    reference = _reference_manifest(
        planned, {c.case_id for c in cases}, folder / "predicted_cases.json"
    )
    with _stage(results, "evaluate", on_stage) as stage:
        sig = _signature(_sha(run.pred_dir / REPORT), _sha(reference))
        if stamps.fresh("evaluate", sig, [run.eval_dir / "summary.json"]):
            stage.status = "up to date"
        else:
            for _ in evaluate_folder(run.pred_dir, reference, run.eval_dir):
                pass
            stamps.record("evaluate", sig)
    with _stage(results, "report", on_stage) as stage:
        sig = _signature(_sha(run.pred_dir / REPORT), _sha(run.eval_dir / "summary.json"))
        if stamps.fresh("report", sig, [run.report_dir / "index.html"]):
            stage.status = "up to date"
        else:
            predictions = load_prediction_set(run.pred_dir, images=reference)
            outcomes = list(write_reports(predictions, run.report_dir, eval_dir=run.eval_dir))
            stage.detail = f"{len({o.patient_id for o in outcomes})} patients"
            stamps.record("report", sig)
    return run
