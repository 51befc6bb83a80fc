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
from medseg.errors import DataError
from medseg.inference.windows import plain_tensor
from medseg.io.geometry import affines_close
from medseg.io.volume import Volume
from medseg.transforms.load import metatensor_like, volume_to_metatensor
from medseg.transforms.pipelines import IMAGE, channel_keys, preprocess_transforms

__all__ = ["Ensemble", "Prediction", "Prepared", "as_channels", "prepare"]

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


def as_channels(resolved: ResolvedWorkflow, scan: Volume | Sequence[Volume]) -> list[Volume]:
    """A scan as one volume per input channel of the model (the first one's grid is the output's).

    Raises:
        DataError: another number of channels than the model takes, or channels on different
            grids.
    """
    volumes = [scan] if isinstance(scan, Volume) else list(scan)
    names = resolved.plan.channels
    if len(volumes) != len(names):
        raise DataError(
            f"{len(volumes)} input channel(s) given; the model takes {len(names)}: "
            f"{', '.join(names)}",
            hint="name channel files <case>_0000, <case>_0001 ... or predict a manifest",
        )
    for name, other in zip(names[1:], volumes[1:]):
        if other.shape != volumes[0].shape or not affines_close(other.affine, volumes[0].affine):
            raise DataError(
                f"channel {name!r} ({other.shape}) is not on the grid of channel {names[0]!r} "
                f"({volumes[0].shape})",
                hint="resample every channel onto the first one's grid",
            )
    return volumes


def prepare(resolved: ResolvedWorkflow, scan: Volume | Sequence[Volume]) -> Prepared:
    """The training preprocessing applied to an in-memory scan (invertible).

    ``scan``: a volume, or one volume per input channel (see :func:`as_channels`).
    """
    volumes = as_channels(resolved, scan)
    compose = preprocess_transforms(resolved, root=None, with_label=False, load=False)
    keys = channel_keys(resolved)
    data = compose({k: volume_to_metatensor(v, dtype=np.float32) for k, v in zip(keys, volumes)})
    return Prepared(data, compose)
