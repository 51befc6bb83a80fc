"""Validation during training: the predictor's sliding window, then medseg's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.evaluation.api import case_metrics_arrays
from medseg.inference.windows import (
    labels_from_probabilities,
    plain_tensor,
    predict_probabilities,
    window_settings,
)
from medseg.transforms.pipelines import IMAGE, LABEL


@dataclass
class ValidationResult:
    """Mean over validation cases of per-class Dice and lesion F1 (lesion labels only)."""

    dice: dict[str, float] = field(default_factory=dict)
    lesion_f1: dict[str, float] = field(default_factory=dict)
    n_cases: int = 0

    @property
    def mean_dice(self) -> float:
        """Mean foreground Dice (NaN classes ignored); the model-selection metric."""
        values = [v for v in self.dice.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else 0.0


@torch.no_grad()
def validate(
    model: nn.Module,
    items: Sequence[dict[str, Any]],
    resolved: ResolvedWorkflow,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> ValidationResult:
    """Predict each preprocessed validation case and score it on the preprocessed grid."""
    model.eval()
    settings = window_settings(resolved)
    names = {int(k): v for k, v in resolved.plan.labels.items() if k != "0"}
    per_case: list[dict[str, Any]] = []
    for item in items:
        image = plain_tensor(item[IMAGE]).to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            probs = predict_probabilities(model, image, settings, num_classes=resolved.num_classes)
        pred = labels_from_probabilities(probs)
        ref = np.asarray(item[LABEL])[0]
        spacing = (
            tuple(float(s) for s in item[IMAGE].pixdim)
            if hasattr(item[IMAGE], "pixdim")
            else (1.0, 1.0, 1.0)
        )
        per_case.append(
            case_metrics_arrays(
                pred, ref, spacing=spacing, labels=names, lesion_labels=resolved.plan.lesion_labels
            )
        )
    model.train()
    result = ValidationResult(n_cases=len(per_case))
    for value, name in names.items():
        dices = [m["dice"][value] for m in per_case if not np.isnan(m["dice"][value])]
        result.dice[name] = float(np.mean(dices)) if dices else float("nan")
        if value in resolved.plan.lesion_labels:
            f1 = [m["lesion_f1"][value] for m in per_case if not np.isnan(m["lesion_f1"][value])]
            result.lesion_f1[name] = float(np.mean(f1)) if f1 else float("nan")
    return result
