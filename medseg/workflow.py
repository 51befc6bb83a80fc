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
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.artifacts import RUN_REPORT
from medseg.config.run import PlannedRun, plan_run
from medseg.errors import DataError
from medseg.io.atomic import file_sha256, write_json_atomic
from medseg.run_folder import BEST
from medseg.text import plural
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


@dataclass
class _Run:
    """What the stages of one :func:`run_workflow` call share."""

    planned: PlannedRun
    out: WorkflowRun
    stamps: _Stamps
    fold: int
    device: str
    dicom_seg: bool
    notice: str | None = None

    @property
    def fold_dir(self) -> Path:
        return self.out.run_dir / f"fold_{self.fold}"


def _train_stage(ctx: _Run, stage: StageResult, on_epoch_end: Callable[[Any], None] | None) -> None:
    from medseg.training.loop import train

    p = ctx.planned.resolved.plan
    sig = _signature(p.workflow_sha256, p.manifest_sha256, p.fingerprint_sha256, ctx.fold)
    if ctx.stamps.fresh("train", sig, [ctx.fold_dir / BEST]):
        stage.status = "up to date"
        return
    ctx.stamps.forget_after("plan")
    if ctx.fold_dir.exists():
        shutil.rmtree(ctx.fold_dir)
    outcome = train(
        ctx.planned.resolved,
        ctx.planned.manifest,
        ctx.out.run_dir,
        fold=ctx.fold,
        device=ctx.device,
        on_epoch_end=on_epoch_end,
    )
    stage.detail = (
        f"best validation {outcome.best_metric} {outcome.best_score:.4f} "
        f"at epoch {outcome.best_epoch}; {outcome.stopped}"
    )
    ctx.stamps.record("train", sig)


def _predict_stage(ctx: _Run, stage: StageResult, cases: Sequence[Any]) -> None:
    from medseg.inference.batch import BatchOptions, predict_cases
    from medseg.inference.predictor import Predictor

    sig = _signature(_sha(ctx.fold_dir / BEST), sorted(c.case_id for c in cases), ctx.dicom_seg)
    if ctx.stamps.fresh("predict", sig, [ctx.out.pred_dir / RUN_REPORT]):
        stage.status = "up to date"
        return
    ctx.stamps.forget_after("train")
    predictor = Predictor.from_run(ctx.out.run_dir, folds=[ctx.fold], device=ctx.device)
    options = BatchOptions(overwrite=True, dicom_seg=ctx.dicom_seg)
    done = list(predict_cases(predictor, cases, ctx.out.pred_dir, options))
    failed = [r.case_id for r in done if r.status in ("failed", "partial")]
    stage.detail = f"{plural(len(done) - len(failed), 'case')} segmented" + (
        f", failed: {failed}" if failed else ""
    )
    stage.status = "failed" if failed else "ran"
    ctx.stamps.record("predict", sig)


def _evaluate_stage(ctx: _Run, stage: StageResult, reference: Path) -> None:
    from medseg.evaluation.folder import evaluate_folder

    sig = _signature(_sha(ctx.out.pred_dir / RUN_REPORT), _sha(reference))
    if ctx.stamps.fresh("evaluate", sig, [ctx.out.eval_dir / "summary.json"]):
        stage.status = "up to date"
        return
    for _ in evaluate_folder(ctx.out.pred_dir, reference, ctx.out.eval_dir):
        pass
    ctx.stamps.record("evaluate", sig)


def _report_stage(ctx: _Run, stage: StageResult, reference: Path) -> None:
    from medseg.reports import load_prediction_set, write_reports

    out = ctx.out
    sig = _signature(
        _sha(out.pred_dir / RUN_REPORT), _sha(out.eval_dir / "summary.json"), ctx.notice
    )
    if ctx.stamps.fresh("report", sig, [out.report_dir / "index.html"]):
        stage.status = "up to date"
        return
    predictions = load_prediction_set(out.pred_dir, images=reference)
    outcomes = list(
        write_reports(predictions, out.report_dir, eval_dir=out.eval_dir, notice=ctx.notice)
    )
    stage.detail = plural(len({o.patient_id for o in outcomes}), "patient")
    ctx.stamps.record("report", sig)


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
    report_notice: str | None = None,
) -> WorkflowRun:
    """Run every stage of a workflow into ``run_dir`` (``predictions/``, ``evaluation/``,
    ``reports/`` inside it), skipping stages whose inputs did not change.

    ``report_notice`` is shown at the top of every report (e.g. that the model is a smoke run).
    """
    results: list[StageResult] = []
    with _stage(results, "plan", on_stage) as stage:
        planned = plan_run(workflow_file, overrides=overrides, run_dir=run_dir)
        stage.status = "up to date" if planned.reused else "ran"
    folder = planned.run_dir
    out = WorkflowRun(
        folder, folder / "predictions", folder / "evaluation", folder / "reports", results
    )
    ctx = _Run(planned, out, _Stamps(folder), fold, device, dicom_seg, report_notice)
    with _stage(results, "train", on_stage) as stage:
        _train_stage(ctx, stage, on_epoch_end)
    cases = _predict_cases(planned, fold, predict_split)
    with _stage(results, "predict", on_stage) as stage:
        _predict_stage(ctx, stage, cases)
    reference = _reference_manifest(
        planned, {c.case_id for c in cases}, folder / "predicted_cases.json"
    )
    with _stage(results, "evaluate", on_stage) as stage:
        _evaluate_stage(ctx, stage, reference)
    with _stage(results, "report", on_stage) as stage:
        _report_stage(ctx, stage, reference)
    return out
