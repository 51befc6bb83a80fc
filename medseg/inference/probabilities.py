"""Per-class probabilities on the source grid (``predict --save-probabilities``).

``<case_id>_probabilities.npz`` (NumPy, compressed) holds:

* ``probabilities``: float16 ``(K, X, Y, Z)``, class ``k`` of the label map's channel ``k`` on
  the source grid (the label map's shape and voxel order), each voxel summing to 1 (within
  float16 rounding, < 1e-3);
* ``affine``: the 4x4 RAS affine of ``<case_id>.nii.gz``; ``label_values`` (int) and
  ``label_names`` (str): what each channel is.

The probabilities are the model's (the fold and test-time-augmentation mean, linearly resampled
back to the source grid exactly as for the label map) *before* post-processing: their arg-max is
the label map before ``postprocess`` (``min_volume_mm3``, ``fill_holes``, ``keep_largest``),
which is ``<case_id>.nii.gz`` whenever post-processing is off (the default) or changed nothing;
otherwise the run report notes how many voxels it changed. Rounding to float16 keeps each
voxel's arg-max: where two classes round to the same value, the winner is raised by one float16
step.

Memory: the classes go back to the source grid one at a time (one class resampled by
``Invertd`` at a time, not all of them) and are staged in disk-backed arrays in the output
folder (``4K`` + ``2K`` bytes per source voxel, removed afterwards); the normalisation and the
float16 rounding run in slabs of :data:`SLAB_VOXELS`. So a 512 x 512 x 600 CT with 3 classes
stages about 2.8 GB on disk and holds one class at a time in memory.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from medseg.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

    from medseg.inference.prediction import Prepared

__all__ = ["PROBABILITIES_SUFFIX", "SLAB_VOXELS", "SourceProbabilities", "half_probabilities"]

logger = logging.getLogger(__name__)

PROBABILITIES_SUFFIX = "_probabilities.npz"
SLAB_VOXELS = 1 << 22
"""Source voxels per slab of the normalisation pass (about 4 M)."""


def half_probabilities(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float16]:
    """``(K, ...)`` class scores -> float16 probabilities summing to 1, arg-max kept.

    Each voxel is divided by its sum (a voxel summing to 0 becomes class 0), rounded to float16,
    and where rounding tied the winner (the first maximum of ``values``, as the label map's
    arg-max takes it) with an earlier class, the winner is raised by one float16 step.
    """
    winner = np.argmax(values, axis=0)
    total = values.sum(axis=0, dtype=np.float64)
    safe = total > 0
    probs = np.divide(values, total, out=np.zeros(values.shape, np.float64), where=safe)
    probs[0][~safe] = 1.0
    half = probs.astype(np.float16)
    tied = np.argmax(half, axis=0) != winner
    if tied.any():
        where = np.nonzero(tied)
        index = (winner[where], *where)
        half[index] = np.nextafter(half[index], np.float16(np.inf))
    return half


def _normalise_into(raw: np.ndarray, out: np.ndarray) -> None:
    """``out[:, i] = half_probabilities(raw[:, i])`` slab by slab along the first spatial axis."""
    plane = max(1, int(np.prod(raw.shape[2:])))
    rows = max(1, SLAB_VOXELS // plane)
    for start in range(0, raw.shape[1], rows):
        part = slice(start, min(start + rows, raw.shape[1]))
        out[:, part] = half_probabilities(np.asarray(raw[:, part]))


@dataclass
class SourceProbabilities:
    """A prediction's class probabilities, still on the preprocessed grid, and the way back.

    Attributes:
        prepared: the preprocessing of the scan (its inverse brings values to the source grid).
        probs: ``[K, X', Y', Z']`` fold/TTA-mean softmax on the preprocessed grid (device).
        shape: the source grid ``(X, Y, Z)``.
        changed_by_postprocess: label-map voxels post-processing changed (the probabilities'
            arg-max is the label map before post-processing).
    """

    prepared: Prepared
    probs: torch.Tensor
    shape: tuple[int, int, int]
    changed_by_postprocess: int = 0

    def _class_on_source(self, k: int) -> npt.NDArray[np.floating]:
        """Class ``k`` resampled to the source grid ``(X, Y, Z)`` (host array)."""
        values = self.prepared.to_source(self.probs[k : k + 1], nearest=False)[0]
        return np.asarray(values.detach().to("cpu").numpy())

    def write(
        self, path: Path, *, affine: npt.NDArray[np.float64], label_names: Mapping[int, str]
    ) -> Path:
        """Write ``<case_id>_probabilities.npz`` (see the module docstring); returns ``path``.

        Args:
            path: the ``.npz`` file (written atomically).
            affine: the label map's RAS affine.
            label_names: ``{value: name}`` of the channels (value ``k`` = channel ``k``).
        """
        n_classes = int(self.probs.shape[0])
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".probabilities-") as tmp:
            raw: np.ndarray | None = None
            for k in range(n_classes):
                values = self._class_on_source(k)
                if raw is None:
                    raw = np.lib.format.open_memmap(
                        Path(tmp) / "raw.npy", "w+", values.dtype, (n_classes, *self.shape)
                    )
                raw[k] = values
                del values
            assert raw is not None, "a model has at least one class"
            out = np.lib.format.open_memmap(
                Path(tmp) / "half.npy", "w+", np.float16, (n_classes, *self.shape)
            )
            _normalise_into(raw, out)
            values_list = list(range(n_classes))
            with atomic_path(path) as target:
                np.savez_compressed(
                    target,
                    probabilities=out,
                    affine=np.asarray(affine, np.float64),
                    label_values=np.asarray(values_list, np.int64),
                    label_names=np.asarray([label_names.get(v, f"label_{v}") for v in values_list]),
                )
            del raw, out
        logger.debug("wrote %s (%d classes)", path.name, n_classes)
        return path
