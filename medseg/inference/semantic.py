"""The U-Net path (``task.kind: semantic``): probabilities, inverted, arg-max, post-processed.

:func:`predict_semantic`: the training preprocessing -> sliding-window softmax of each fold's
model (foreground crop, empty windows skipped, flip TTA; :mod:`medseg.inference.windows`,
:mod:`medseg.inference.tta`) under the workflow's autocast policy (``train.amp``) -> mean over
folds -> probabilities back on the source grid (linear ``Invertd``) -> arg-max -> the workflow's
post-processing. On CUDA the probabilities accumulate on the device in half precision and only
the label map returns to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medseg.inference.postprocess import postprocess
from medseg.inference.prediction import Ensemble, Prediction, as_channels, prepare
from medseg.inference.tta import tta_axes
from medseg.inference.windows import (
    labels_from_probabilities,
    predict_probabilities,
    window_settings,
)
from medseg.io.volume import Volume
from medseg.models.runtime import amp_dtype, autocast

__all__ = ["accumulate_dtype", "ensemble_probabilities", "predict_semantic"]


def accumulate_dtype(device: torch.device) -> torch.dtype:
    """Probability accumulators: half precision on CUDA (memory), float32 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


@torch.no_grad()
def ensemble_probabilities(
    ensemble: Ensemble, image: torch.Tensor, *, tta: bool | None = None
) -> torch.Tensor:
    """Mean softmax over folds ``[K, X, Y, Z]`` (on the device) of a preprocessed ``[C, X, Y, Z]``.

    Args:
        ensemble: the run's models.
        image: the preprocessed image on ``ensemble.device``.
        tta: flip test-time augmentation (None: the workflow's ``infer.tta``).
    """
    resolved = ensemble.resolved
    settings = window_settings(resolved)
    axes = tta_axes(resolved, tta)
    total = None
    with autocast(ensemble.device, amp_dtype(resolved, ensemble.device)):
        for model in ensemble.models:
            probs = predict_probabilities(
                model,
                image,
                settings,
                num_classes=resolved.num_classes,
                tta_axes=axes,
                accumulate_dtype=accumulate_dtype(ensemble.device),
            )
            total = probs if total is None else total + probs
    assert total is not None, "an ensemble has at least one model"
    return total / len(ensemble.models)


def predict_semantic(
    ensemble: Ensemble, scan: Volume | Sequence[Volume], tta: bool | None = None
) -> Prediction:
    """The label map of one scan (a volume, or one per input channel) on its source grid (the
    first channel's; ``seconds`` left to the caller)."""
    resolved = ensemble.resolved
    volume = as_channels(resolved, scan)[0]
    prepared = prepare(resolved, scan)
    probs = ensemble_probabilities(ensemble, prepared.image(ensemble.device), tta=tta)
    labels = labels_from_probabilities(prepared.to_source(probs, nearest=False))
    labels = postprocess(
        labels,
        spacing=volume.spacing,
        config=resolved.postprocess,
        label_names=resolved.plan.labels,
    )
    return Prediction(volume.with_array(labels, kind="label"))
