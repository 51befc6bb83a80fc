"""Validation of a Mask R-CNN during training: whole-case inference as ``medseg predict`` does.

Each preprocessed validation case is tiled, merged and (2D) linked by
:func:`~medseg.inference.instances.predict_instances`, with the workflow's ``instances``
thresholds; the scored instances are matched to the reference lesions by
:func:`~medseg.evaluation.evaluate_arrays` (the workflow's ``evaluate.lesion_match`` rule).
Dice and lesion F1 are pooled over the cases for the lesion labels only (the detected classes).
The model-selection score is the mean lesion F1 (Dice breaks ties, see
:class:`~medseg.training.validation.ValidationResult`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.evaluation import EvaluationOptions, evaluate_arrays
from medseg.inference.instances import instance_settings, predict_instances
from medseg.inference.windows import plain_tensor
from medseg.training.validation import ScorePool, ValidationResult, voxel_spacing
from medseg.transforms.pipelines import IMAGE, LABEL

__all__ = ["validate_instances"]


@torch.no_grad()
def validate_instances(
    model: nn.Module,
    items: Sequence[dict[str, Any]],
    resolved: ResolvedWorkflow,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> ValidationResult:
    """Predict the instances of each preprocessed validation case and pool the scores."""
    model.eval()
    settings = instance_settings(resolved)
    names = {int(v): resolved.plan.labels[str(v)] for v in resolved.plan.lesion_labels}
    options = EvaluationOptions(
        surface=False,
        min_iou=resolved.evaluate.lesion_iou if resolved.evaluate.lesion_match == "iou" else 0.0,
    )
    pools = {value: ScorePool() for value in names}
    try:
        for item in items:
            image = plain_tensor(item[IMAGE]).to(device)
            found = predict_instances([model], image, settings, amp_dtype=amp_dtype)
            metrics = evaluate_arrays(
                found.semantic(),
                np.asarray(plain_tensor(item[LABEL]))[0],
                spacing=voxel_spacing(item[IMAGE]),
                labels=names,
                lesion_labels=list(names),
                options=options,
                instances=found.predicted(),
            )
            for value, pool in pools.items():
                c = metrics.classes[value]
                pool.overlap += c.dice * (c.volume_pred_mm3 + c.volume_ref_mm3) / 2
                pool.total += c.volume_pred_mm3 + c.volume_ref_mm3
                s = metrics.lesions[value].scores
                pool.tp, pool.fp, pool.fn = pool.tp + s.tp, pool.fp + s.fp, pool.fn + s.fn
    finally:
        model.train()
    return ValidationResult(
        dice={names[v]: p.dice() for v, p in pools.items()},
        lesion_f1={names[v]: p.f1() for v, p in pools.items()},
        n_cases=len(items),
        selection="lesion_f1",
    )
