"""Label maps (numpy/scipy, no torch): connected components and the label dtype rule.

Every count of lesions in medseg (dataset fingerprint, evaluation, reports, post-processing,
Mask R-CNN training targets) goes through :func:`label_components`, so they agree on what one
lesion is: by default voxels touching by a face, an edge or a corner belong together
(26-connectivity in 3D, its in-plane section, 8-connectivity, in 2D).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["CONNECTIVITIES", "label_components", "label_dtype"]

# neighbours -> ``generate_binary_structure`` rank, per dimensionality. A 2D map also takes the
# 3D names: the in-plane section of a 6-neighbourhood is 4, of 18 and 26 it is 8.
CONNECTIVITIES: dict[int, dict[int, int]] = {
    2: {4: 1, 8: 2, 6: 1, 18: 2, 26: 2},
    3: {6: 1, 18: 2, 26: 3},
}


def connectivity_rank(ndim: int, connectivity: int) -> int:
    """Rank of :func:`scipy.ndimage.generate_binary_structure` for ``connectivity`` neighbours.

    Raises:
        ValueError: ``ndim`` is not 2 or 3, or ``connectivity`` is not one of 6/18/26 (3D) or
            4/8/6/18/26 (2D).
    """
    if ndim not in CONNECTIVITIES:
        raise ValueError(f"label maps are 2D or 3D, got {ndim}D")
    rank = CONNECTIVITIES[ndim].get(int(connectivity))
    if rank is None:
        allowed = ", ".join(str(c) for c in CONNECTIVITIES[ndim])
        raise ValueError(f"connectivity for {ndim}D must be one of {allowed}, got {connectivity}")
    return rank


def label_components(
    mask: npt.ArrayLike, *, connectivity: int = 26
) -> tuple[npt.NDArray[np.int32], int]:
    """Connected components of a mask, numbered ``1..n`` in raster order of their first voxel.

    Args:
        mask: 2D or 3D array; non-zero (True) voxels are foreground.
        connectivity: neighbours that connect voxels: 6 (faces), 18 (+ edges) or 26 (+ corners)
            in 3D; 4 or 8 in 2D, where 6 means 4 and 18 / 26 mean 8 (the in-plane section).

    Returns:
        ``(components, n)``: int32 map of the mask's shape (0 = background) and the count.

    Raises:
        ValueError: see :func:`connectivity_rank`.

    Example:
        >>> mask = np.zeros((3, 3, 3), bool); mask[0, 0, 0] = mask[1, 1, 1] = True
        >>> label_components(mask)[1], label_components(mask, connectivity=6)[1]
        (1, 2)
    """
    array = np.asarray(mask) != 0
    structure = ndimage.generate_binary_structure(
        array.ndim, connectivity_rank(array.ndim, connectivity)
    )
    components, n = ndimage.label(array, structure=structure, output=np.int32)
    return components, int(n)


def label_dtype(max_label: int, *, signed: bool = False) -> type[np.integer]:
    """The dtype of a label map whose largest value is ``max_label``.

    uint8 up to 255, else uint16; ``signed=True`` gives int16 instead of uint16 (torch tensors:
    torch has few uint16 kernels).
    """
    if max_label <= np.iinfo(np.uint8).max:
        return np.uint8
    return np.int16 if signed else np.uint16
