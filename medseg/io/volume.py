"""The :class:`Volume`: an image or label array that always travels with its geometry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.io.geometry import (
    apply_affine,
    lps_to_ras_points,
    spacing_from_affine,
    world_to_voxel,
)
from medseg.types import Affine, Spacing


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan or label map with its geometry.

    Attributes:
        array: ``(X, Y, Z)`` array (column, row, slice of the source). Images are usually float32 or
            int16; label maps are integer.
        affine: 4x4 float64 matrix mapping voxel index ``(i, j, k, 1)`` to RAS world mm.
        meta: free-form metadata (source path, modality, laterality, study date, ...). Never holds
            patient names or birth dates unless explicitly requested by the reader.
    """

    array: npt.NDArray[Any]
    affine: Affine
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3D (X, Y, Z), got shape {self.array.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(X, Y, Z)``."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> Spacing:
        """Voxel size in mm along the array axes."""
        return spacing_from_affine(self.affine)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3 (absolute determinant of the affine's 3x3 part)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def orientation(self) -> str:
        """Axis codes of the array axes in RAS terms, e.g. ``"LPS"`` or ``"RAS"``."""
        import nibabel.orientations as nio

        return "".join(nio.aff2axcodes(self.affine))

    def with_array(self, array: npt.NDArray[Any], **meta: Any) -> Volume:
        """Same geometry, another array of the same shape (e.g. a label map for this image)."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} differs from volume shape {self.shape}")
        return replace(self, array=array, meta={**self.meta, **meta})

    def voxel_to_ras(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """World RAS mm of ``(..., 3)`` voxel indices."""
        return apply_affine(self.affine, ijk)

    def voxel_to_lps(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Patient LPS mm of ``(..., 3)`` voxel indices."""
        return lps_to_ras_points(apply_affine(self.affine, ijk))

    def ras_to_voxel(self, points_ras: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous voxel indices of ``(..., 3)`` RAS mm points."""
        return world_to_voxel(self.affine, points_ras)

    def lps_to_voxel(self, points_lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous voxel indices of ``(..., 3)`` LPS mm points."""
        return world_to_voxel(self.affine, lps_to_ras_points(points_lps))
