"""Where each lesion of a lesion map is: voxel centroid and slice range (for ``lesions.csv``).

Locations are computed on the lesion maps the matching used (a bounding-box crop of the case),
then shifted back to the case's voxel grid, so every matched, missed and false lesion can be
found in a viewer. Indices are 0-based; the slice axis is the array's last axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io.geometry import ras_to_lps_affine


@dataclass(frozen=True)
class LesionLocation:
    """One lesion's place on the case grid.

    Attributes:
        centroid_voxel: mean voxel index along each array axis (0-based, continuous).
        slice_first, slice_last: first and last index along the last axis holding the lesion
            (3D maps; ``None`` for 2D).
    """

    centroid_voxel: tuple[float, ...]
    slice_first: int | None
    slice_last: int | None

    def centroid_lps_mm(self, affine_ras: npt.NDArray[np.float64]) -> tuple[float, float, float]:
        """The centroid in patient LPS coordinates (mm) given the grid's voxel->RAS affine."""
        ijk = np.zeros(3)
        ijk[: len(self.centroid_voxel)] = self.centroid_voxel
        lps = ras_to_lps_affine(np.asarray(affine_ras, dtype=np.float64)) @ np.append(ijk, 1.0)
        return float(lps[0]), float(lps[1]), float(lps[2])


def lesion_locations(
    lesions: npt.NDArray[np.integer], offset: Sequence[int] = ()
) -> dict[int, LesionLocation]:
    """Centroid and slice range of every id of a lesion map.

    Args:
        lesions: integer lesion map (0 = background), 2D or 3D, possibly a crop of the case.
        offset: index of the crop's first voxel in the case grid (default: no crop).

    Returns:
        lesion id -> :class:`LesionLocation` on the case grid.

    Example:
        >>> m = np.zeros((4, 4, 6), int); m[1:3, 1:3, 2:5] = 7
        >>> loc = lesion_locations(m, offset=(10, 0, 0))[7]
        >>> loc.centroid_voxel, loc.slice_first, loc.slice_last
        ((11.5, 1.5, 3.0), 2, 4)
    """
    array = np.asarray(lesions)
    shift = np.asarray(list(offset) or [0] * array.ndim, dtype=np.float64)
    ids = [int(i) for i in np.unique(array) if i != 0]
    if not ids:
        return {}
    centres = ndimage.center_of_mass(array != 0, array, ids)
    boxes = ndimage.find_objects(array.astype(np.int64, copy=False))
    out = {}
    for lesion_id, centre in zip(ids, centres):
        first = last = None
        if array.ndim == 3:
            box = boxes[lesion_id - 1]
            first = int(box[2].start + shift[2])
            last = int(box[2].stop - 1 + shift[2])
        voxel = tuple(float(c + s) for c, s in zip(centre, shift))
        out[lesion_id] = LesionLocation(voxel, first, last)
    return out
