"""3D Slicer segmentation files (``.seg.nrrd``) -> label-map :class:`Volume` (via slicerio).

Slicer stores segments in a NRRD whose header has ``Segment<i>_ID``, ``_Name``, ``_LabelValue``,
``_Layer`` and ``_Extent`` fields (plus ``Segmentation_*`` fields). Segments that do not overlap
share one 3D layer, told apart by their label values; overlapping segments go to further layers,
and the file is then 4D (``kinds: list domain domain domain``: layer first). Segments become
label values by the rule of :mod:`medseg.io.segments`. The grid is the file's own (``space
origin`` and ``space directions``, LPS), which Slicer may crop to the segments' extent; callers
place it on the partner grid with :func:`medseg.io.grid.common_grid`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medseg._optional import require
from medseg.errors import DataError
from medseg.io.geometry import lps_to_ras_affine
from medseg.io.grid import PARTIAL_EXTENT
from medseg.io.segments import Segment, combine_segment_masks, segment_label_values
from medseg.io.volume import Volume
from medseg.types import PathLike

SEGMENT_FIELD = "Segment0_ID"


def is_slicer_segmentation(path: PathLike) -> bool:
    """Whether ``path`` is a NRRD file whose header describes Slicer segments."""
    if not Path(path).name.lower().endswith(".nrrd"):
        return False
    with open(path, "rb") as handle:
        header = handle.read(1 << 16)
    head = header.split(b"\n\n", 1)[0]
    return head.startswith(b"NRRD") and f"\n{SEGMENT_FIELD}:=".encode() in head


def _read(path: Path) -> dict[str, Any]:
    slicerio = require("slicerio", purpose="reading Slicer .seg.nrrd files")
    try:
        return dict(slicerio.read_segmentation(str(path)))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise DataError(f"unreadable Slicer segmentation: {err}", path=path) from err


def read_slicer_segmentation(
    path: PathLike, *, label_names: Mapping[int, str] | None = None
) -> Volume:
    """Read a Slicer ``.seg.nrrd`` as one integer label map on the file's grid.

    Args:
        path: the ``.seg.nrrd`` file (3D, or 4D with one layer per group of overlapping segments).
        label_names: ``{value: name}`` used to map segments by name (see :mod:`.segments`).

    Returns:
        :class:`Volume`: integer label map ``(X, Y, Z)`` with its RAS affine (mm);
        ``meta["segments"]`` lists ``{"name", "label"}`` per mapped segment,
        ``meta["overlap_voxels"]`` the overlap count.

    Raises:
        DataError: unreadable file, no segments, or an array that is not 3D/4D.
    """
    import slicerio

    source = Path(path)
    data = _read(source)
    voxels = np.asarray(data["voxels"])
    segments = list(data.get("segments") or [])
    if voxels.ndim not in (3, 4) or not segments:
        raise DataError(
            f"expected a 3D or layered 4D segmentation with segments, got a {voxels.ndim}D array "
            f"with {len(segments)} segments",
            path=source,
        )
    described = [
        Segment(i + 1, str(s.get("name") or s.get("id") or i + 1), s.get("labelValue"))
        for i, s in enumerate(segments)
    ]
    values = segment_label_values(described, label_names)
    masks = [
        (values[d.number], np.asarray(slicerio.segment_mask(data, s), dtype=bool))
        for d, s in zip(described, segments)
        if d.number in values
    ]
    labels, overlap = combine_segment_masks(masks, voxels.shape[-3:])
    affine = lps_to_ras_affine(np.asarray(data["ijkToLPS"], dtype=np.float64))
    mapped = [{"name": d.name, "label": values[d.number]} for d in described if d.number in values]
    meta = {"source": str(source), "format": "seg.nrrd", "segments": mapped}
    return Volume(labels, affine, {**meta, "overlap_voxels": overlap, PARTIAL_EXTENT: True})
