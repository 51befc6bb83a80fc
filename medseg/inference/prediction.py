"""What every prediction path shares: the loaded models, the preprocessing and its inverse, and
the :class:`Prediction` it returns.

A path (one per ``task.kind``, see :data:`medseg.inference.predictor.PREDICT_FNS`) is a function
``(ensemble, volume, tta) -> Prediction``: it runs :func:`prepare` (the training preprocessing:
orientation, spacing, normalisation, kept invertible), predicts on the preprocessed grid with
``ensemble``'s models, and brings the result back to the source grid with
:meth:`Prepared.to_source` (MONAI's ``Invertd``), so a prediction always has exactly the source's
shape and affine.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, Invertd
from torch import nn

from medseg.artifacts import InstanceRecord
from medseg.config.schema import ResolvedWorkflow
from medseg.inference.windows import plain_tensor
from medseg.io.volume import Volume
from medseg.transforms.load import metatensor_like, volume_to_metatensor
from medseg.transforms.pipelines import IMAGE, preprocess_transforms

__all__ = ["Ensemble", "Prediction", "Prepared", "prepare"]

PRED = "pred"


@dataclass(frozen=True)
class Ensemble:
    """The trained models of one run (one per fold, in eval mode) and where they run.

    Attributes:
        resolved: the run's resolved workflow (every fold was planned from the same data).
        models: the networks, already on ``device``.
        device: where the networks and the preprocessed image live.
    """

    resolved: ResolvedWorkflow
    models: Sequence[nn.Module]
    device: torch.device


@dataclass
class Prediction:
    """One scan's prediction on its source grid.

    Attributes:
        labels: the label map (source shape and affine).
        seconds: wall time of the whole prediction, reading excluded.
        instances: Mask R-CNN runs: one :class:`~medseg.artifacts.InstanceRecord` per id of
            ``instance_map``.
        instance_map: Mask R-CNN runs: instance ids (0 background) on the source grid.
    """

    labels: Volume
    seconds: float = 0.0
    instances: list[InstanceRecord] = field(default_factory=list)
    instance_map: Volume | None = None


@dataclass
class Prepared:
    """A scan after the training preprocessing, with what it takes to go back.

    Attributes:
        data: MONAI dictionary; ``data["image"]`` is the ``[C, X, Y, Z]`` MetaTensor on the
            preprocessed grid and carries the applied transforms.
        compose: the preprocessing (inverted by :meth:`to_source`).
    """

    data: dict[Hashable, Any]
    compose: Compose

    def image(self, device: torch.device) -> torch.Tensor:
        """The preprocessed image ``[C, X, Y, Z]`` as a plain tensor on ``device``."""
        return plain_tensor(self.data[IMAGE]).to(device)

    def to_source(self, values: torch.Tensor, *, nearest: bool) -> torch.Tensor:
        """``[K, X', Y', Z']`` on the preprocessed grid -> ``[K, X, Y, Z]`` on the source grid.

        ``nearest=False`` interpolates linearly (probabilities), ``nearest=True`` keeps values
        (label or instance ids, given as float). The inverse of the same orientation and spacing
        transforms, via MONAI's ``Invertd``; the result stays on ``values``' device.
        """
        image = self.data[IMAGE]
        data = dict(self.data)
        data[PRED] = metatensor_like(values, image)
        inverted = Invertd(
            keys=PRED, transform=self.compose, orig_keys=IMAGE, nearest_interp=nearest,
            to_tensor=True,
        )(data)[PRED]  # fmt: skip
        return plain_tensor(torch.as_tensor(inverted))


def prepare(resolved: ResolvedWorkflow, volume: Volume) -> Prepared:
    """The training preprocessing applied to an in-memory volume (invertible)."""
    compose = preprocess_transforms(resolved, root=None, with_label=False, load=False)
    data = compose({IMAGE: volume_to_metatensor(volume, dtype=np.float32)})
    return Prepared(data, compose)
