"""Evaluate a folder of predictions against a manifest or a folder of reference label maps.

Prediction folder layout (what ``medseg predict`` writes)::

    <case_id>.nii.gz              semantic label map on the reference grid (or .nii, .mha,
                                  .nrrd, Slicer .seg.nrrd, DICOM SEG .dcm / .seg.dcm)
    <case_id>_instances.nii.gz    optional: instance ids (0 = background)
    <case_id>.json                optional: {"instances": [{"instance_id", "label", "score"}, ...]}
    run_report.json               optional: {"labels": {"0": "background", "1": ...}, ...}

When both instance files exist, the case's predicted lesions are those instances with their scores
(FROC is reported when every evaluated case has them; ids missing from the JSON are ignored);
otherwise they are the connected components of the label map. Cases are paired by id
(:func:`medseg.evaluation._pairing.plan_cases`: nnU-Net names pair too). Label maps on the same
world grid but another extent or axis order (a cropped ``.seg.nrrd``, a SEG without empty frames)
are moved onto one grid without resampling (:mod:`medseg.io.grid`). Unpaired cases and geometry
mismatches are reported as skipped, unreadable files as failed, and the rest of the cohort is
still evaluated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medseg.artifacts import EvalStatus
from medseg.errors import DataError, GeometryError
from medseg.evaluation._pairing import (
    CasePlan,
    plan_cases,
    read_instances,
    resolve_lesion_labels,
)
from medseg.evaluation._surface import foreground_indices
from medseg.evaluation.evaluate import (
    CaseMetrics,
    EvaluationOptions,
    PredictedInstances,
    evaluate_arrays,
    evaluate_case,
)
from medseg.io.atomic import ensure_output_dir
from medseg.io.grid import common_grid
from medseg.types import PathLike

logger = logging.getLogger(__name__)

__all__ = ["CaseEvaluation", "evaluate_folder"]


@dataclass(frozen=True)
class CaseEvaluation:
    """Outcome of one case, yielded by :func:`evaluate_folder` as soon as it is known.

    Attributes:
        case_id: the case.
        status: ``"ok"``, ``"skipped"`` (no partner, geometry mismatch) or ``"failed"``.
        index, total: 1-based position among all cases, and their number (for progress bars).
        reason: why it was skipped or failed.
        metrics: the case's metrics when ``status == "ok"``.
        seconds: time spent on the case.
    """

    case_id: str
    status: EvalStatus
    index: int
    total: int
    reason: str = ""
    metrics: CaseMetrics | None = None
    seconds: float = 0.0


def _present_labels(*arrays: np.ndarray) -> set[int]:
    found: set[int] = set()
    for array in arrays:
        flat = array.ravel(order="K")
        found |= {int(v) for v in np.unique(flat[foreground_indices(flat)])}
    return found


def _evaluate_pair(
    case_id: str,
    plan: CasePlan,
    pred_dir: Path,
    lesion_labels: Sequence[int] | None,
    options: EvaluationOptions,
) -> CaseMetrics:
    try:
        pred, ref = common_grid(
            plan.pred[case_id](), plan.ref[case_id](), atol_mm=options.affine_atol_mm
        )
    except GeometryError as err:
        raise GeometryError(err.message, case_id=case_id, hint=err.hint) from err
    present = _present_labels(pred.array, ref.array)
    if plan.labels is None:
        labels = {v: str(v) for v in sorted(present)}
    else:
        labels = plan.labels
        undeclared = sorted(present - set(labels))
        if undeclared:
            logger.warning(
                "case %s: label values %s are not declared; ignored", case_id, undeclared
            )
    wanted = lesion_labels if lesion_labels is not None else plan.lesion_labels
    lesions = list(labels) if wanted is None else [v for v in wanted if v in labels]
    return evaluate_case(
        pred,
        ref,
        labels=labels,
        lesion_labels=lesions,
        options=options,
        instances=read_instances(pred_dir, case_id, ref, atol_mm=options.affine_atol_mm),
        case_id=case_id,
    )


def _run_case(
    case_id: str,
    plan: CasePlan,
    pred_dir: Path,
    lesion_labels: Sequence[int] | None,
    options: EvaluationOptions,
    index: int,
    total: int,
) -> CaseEvaluation:
    start = time.perf_counter()
    if case_id not in plan.pred:
        reason = (
            f"no prediction {case_id}.nii.gz (or other label-map format) in the prediction folder"
        )
        return CaseEvaluation(case_id, "skipped", index, total, reason)
    if case_id not in plan.ref:
        reason = f"no reference label map for this case in {plan.description}"
        return CaseEvaluation(case_id, "skipped", index, total, reason)
    try:
        metrics = _evaluate_pair(case_id, plan, pred_dir, lesion_labels, options)
    except GeometryError as err:
        return CaseEvaluation(case_id, "skipped", index, total, err.describe(with_hint=False))
    except DataError as err:
        return CaseEvaluation(case_id, "failed", index, total, err.describe(with_hint=False))
    seconds = time.perf_counter() - start
    logger.debug("case %s evaluated in %.2f s", case_id, seconds)
    return CaseEvaluation(case_id, "ok", index, total, metrics=metrics, seconds=seconds)


def complete_classes(
    metrics: CaseMetrics,
    labels: dict[int, str],
    lesion_labels: Sequence[int],
    options: EvaluationOptions,
) -> CaseMetrics:
    """Add the classes a case lacks (absent from its prediction and reference: both empty)."""
    missing = {v: n for v, n in labels.items() if v not in metrics.classes}
    if not missing and all(v in metrics.lesions for v in lesion_labels):
        return replace(metrics, labels={**metrics.labels, **labels})
    zeros = np.zeros((1,) * len(metrics.spacing), dtype=np.uint8)
    instances = PredictedInstances(zeros, {}, {}) if metrics.scored else None
    filler = evaluate_arrays(
        zeros,
        zeros,
        spacing=metrics.spacing,
        labels=labels,
        lesion_labels=[v for v in lesion_labels if v not in metrics.lesions],
        options=options,
        instances=instances,
    )
    return replace(
        metrics,
        labels={**metrics.labels, **labels},
        classes={**filler.classes, **metrics.classes},
        lesions={**filler.lesions, **metrics.lesions},
    )


def evaluate_folder(
    pred_dir: PathLike,
    ref: PathLike,
    out_dir: PathLike,
    *,
    lesion_labels: Sequence[int | str] | None = None,
    options: EvaluationOptions | None = None,
) -> Iterator[CaseEvaluation]:
    """Evaluate every prediction of a folder; yield each case, then write the outputs.

    Args:
        pred_dir: folder of ``<case_id>`` label maps (layout in the module docstring).
        ref: a manifest (its labelled cases; label names and lesion labels from it), a folder
            of ``<case_id>`` reference label maps, or an nnU-Net dataset folder (``labelsTr``);
            label names and lesion labels from the folder's ``labels.json`` when present, else
            names from ``pred_dir/run_report.json`` ``"labels"``, else the nnU-Net
            ``dataset.json`` (of ``ref``, then of ``pred_dir``), else the label values; lesion
            labels then: all foreground.
        out_dir: evaluation folder; receives ``case_metrics.csv``, ``lesions.csv``,
            ``summary.json`` and ``summary.png`` (written atomically after the last case).
        lesion_labels: label values or names whose lesions are matched (overrides the default).
        options: metric settings.

    Yields:
        One :class:`CaseEvaluation` per case id found on either side, in case-id order. The outputs
        are written when the generator is exhausted.

    Raises:
        ConfigError: bad ``ref``, unknown lesion label, unwritable ``out_dir``.
        DataError: no predictions in ``pred_dir``, unreadable manifest labels.
    """
    from medseg.evaluation.outputs import write_outputs

    options = options or EvaluationOptions()
    pred_path, ref_path = Path(pred_dir), Path(ref)
    out = ensure_output_dir(out_dir, what="evaluation folder")
    plan = plan_cases(pred_path, ref_path)
    wanted = resolve_lesion_labels(lesion_labels, plan.labels)
    case_ids = sorted(set(plan.pred) | set(plan.ref))
    results: list[CaseEvaluation] = []
    for index, case_id in enumerate(case_ids, start=1):
        result = _run_case(case_id, plan, pred_path, wanted, options, index, len(case_ids))
        if result.status != "ok":
            logger.info("case %s %s: %s", case_id, result.status, result.reason)
        results.append(result)
        yield result
    write_outputs(
        out,
        results,
        plan_labels=plan.labels,
        lesion_labels=wanted,
        default_lesion_labels=plan.lesion_labels,
        options=options,
        pred_dir=pred_path,
        ref=ref_path,
    )
