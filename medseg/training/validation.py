"""Validation during training: the predictor's sliding window, then medseg's evaluation.

The predictor's post-processing is applied, then scores are pooled over the validation cases (as
nnU-Net's pseudo Dice): per class, Dice of the
summed overlap and volumes; lesion F1 from the summed lesion TP/FP/FN (lesion labels only). The
grid is the preprocessed one (target spacing); the full evaluation on the source grid is
``medseg evaluate``.

Model selection (``ValidationResult.score``): the mean foreground Dice for U-Nets; for Mask R-CNN
(``task.kind: instance``) the mean lesion F1 over the lesion labels, plus 0.001 x the mean lesion
Dice of the pasted masks, which only breaks F1 ties (:mod:`medseg.training.instance_validation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow, SelectionMetric
from medseg.errors import DataError, MedsegError
from medseg.evaluation import EvaluationOptions, evaluate_arrays
from medseg.inference.postprocess import postprocess
from medseg.inference.windows import (
    WindowSettings,
    labels_from_probabilities,
    plain_tensor,
    predict_probabilities,
    window_settings,
)
from medseg.io.geometry import spacing_from_affine
from medseg.models.runtime import autocast
from medseg.transforms.pipelines import IMAGE, LABEL
from medseg.types import Spacing


class CaseValidationError(MedsegError):
    """Validating a case raised an error (names the case; exit code 1)."""


def failed_case(err: Exception, case_id: str | None) -> MedsegError:
    """The error of a case that failed validation, naming the case."""
    if isinstance(err, MedsegError):
        return CaseValidationError(err.describe(with_hint=False), case_id=case_id, hint=err.hint)
    return CaseValidationError(f"{type(err).__name__}: {err}", case_id=case_id)


@dataclass
class ValidationResult:
    """Pooled per-class Dice and lesion F1 of the validation cases."""

    dice: dict[str, float] = field(default_factory=dict)
    lesion_f1: dict[str, float] = field(default_factory=dict)
    n_cases: int = 0
    selection: SelectionMetric = "mean_dice"

    @property
    def mean_dice(self) -> float:
        """Mean foreground Dice (NaN classes ignored)."""
        return _nanmean(self.dice.values())

    @property
    def score(self) -> float:
        """The model-selection score: ``mean_dice``, or ``lesion_f1`` (mean lesion F1 + 0.001 x
        mean Dice, the Dice breaking ties)."""
        if self.selection == "lesion_f1":
            return _nanmean(self.lesion_f1.values()) + 1e-3 * self.mean_dice
        return self.mean_dice


def _nanmean(values: Iterable[float]) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else 0.0


@dataclass
class ScorePool:
    """One class's validation sums over cases: overlap and total voxels (pooled Dice), lesion
    TP/FP/FN (pooled lesion F1)."""

    overlap: float = 0.0
    total: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def dice(self) -> float:
        return 2 * self.overlap / self.total if self.total > 0 else float("nan")

    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom > 0 else float("nan")


def voxel_spacing(tensor: Any) -> Spacing:
    """Voxel spacing (mm) of a preprocessed image, from its affine (a MetaTensor's).

    Raises:
        DataError: the image carries no 4x4 affine (a plain tensor); distances and volumes
            would otherwise silently assume 1 mm voxels.
    """
    affine = getattr(tensor, "affine", None)
    matrix = None if affine is None else np.asarray(torch.as_tensor(affine).detach().cpu())
    if matrix is None or matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise DataError(
            "a validation image carries no voxel-to-world affine, so its spacing is unknown",
            hint="validation items must come from the preprocessing pipeline (MetaTensors)",
        )
    return spacing_from_affine(matrix)


@torch.no_grad()
def validate(
    model: nn.Module,
    items: Sequence[dict[str, Any]],
    resolved: ResolvedWorkflow,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> ValidationResult:
    """Predict each preprocessed validation case and pool its scores."""
    if resolved.task.kind == "instance":
        from medseg.training.instance_validation import validate_instances

        return validate_instances(model, items, resolved, device=device, amp_dtype=amp_dtype)
    model.eval()
    settings = window_settings(resolved)
    names = {int(k): v for k, v in resolved.plan.labels.items() if k != "0"}
    lesion_labels = list(resolved.plan.lesion_labels)
    options = EvaluationOptions(
        surface=False,
        min_iou=resolved.evaluate.lesion_iou if resolved.evaluate.lesion_match == "iou" else 0.0,
    )
    pools = {value: ScorePool() for value in names}
    for item in items:
        try:
            _score_case(model, item, resolved, settings, options, pools, device, amp_dtype)
        except Exception as err:  # the loop reports which case broke validation
            raise failed_case(err, item.get("case_id")) from err
    model.train()
    return ValidationResult(
        dice={names[v]: p.dice() for v, p in pools.items()},
        lesion_f1={names[v]: p.f1() for v, p in pools.items() if v in lesion_labels},
        n_cases=len(items),
    )


def _score_case(
    model: nn.Module,
    item: dict[str, Any],
    resolved: ResolvedWorkflow,
    settings: WindowSettings,
    options: EvaluationOptions,
    pools: dict[int, ScorePool],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> None:
    """Predict one preprocessed case and add its overlap and lesion counts to ``pools``."""
    names = {int(k): v for k, v in resolved.plan.labels.items() if k != "0"}
    image = plain_tensor(item[IMAGE]).to(device)
    with autocast(device, amp_dtype):
        probs = predict_probabilities(model, image, settings, num_classes=resolved.num_classes)
    spacing = voxel_spacing(item[IMAGE])
    pred = postprocess(
        labels_from_probabilities(probs),
        spacing=spacing,
        config=resolved.postprocess,
        label_names=resolved.plan.labels,
    )
    ref = np.asarray(plain_tensor(item[LABEL]))[0]
    metrics = evaluate_arrays(
        pred,
        ref,
        spacing=spacing,
        labels=names,
        lesion_labels=list(resolved.plan.lesion_labels),
        options=options,
    )
    for value, pool in pools.items():
        c = metrics.classes[value]
        pool.overlap += c.dice * (c.volume_pred_mm3 + c.volume_ref_mm3) / 2
        pool.total += c.volume_pred_mm3 + c.volume_ref_mm3
        if value in metrics.lesions:
            s = metrics.lesions[value].scores
            pool.tp, pool.fp, pool.fn = pool.tp + s.tp, pool.fp + s.fp, pool.fn + s.fn
