"""Shared type aliases.

Conventions used across medseg:

* Volumes are numpy arrays indexed ``(X, Y, Z)`` = (column, row, slice) of the source, the order
  nibabel and dcm2niix use; the 4x4 ``affine`` maps ``(i, j, k, 1)`` to RAS world coordinates in mm.
* ``Spacing`` is the voxel size in mm along the array axes, in the same order.
* Points in *patient coordinates* are DICOM LPS in mm unless a name says ``_ras``.
"""

from __future__ import annotations

import os
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

PathLike: TypeAlias = str | os.PathLike[str]
Spacing: TypeAlias = tuple[float, float, float]
Affine: TypeAlias = npt.NDArray[np.float64]
"""4x4 float64 matrix: voxel index (i, j, k, 1) -> world (mm)."""
Point3: TypeAlias = tuple[float, float, float]

Laterality: TypeAlias = Literal["OD", "OS"]
"""Ophthalmic laterality: OD = right eye, OS = left eye."""
ScanFormat: TypeAlias = Literal["dicom", "nifti", "png"]
Dims: TypeAlias = Literal["2d", "3d"]
