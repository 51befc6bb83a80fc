"""DICOM Segmentation objects (any producer) -> label-map :class:`Volume` (via highdicom).

The frames of a SEG carry their own plane positions (patient LPS mm), so the label map is placed
on the source series' geometry without reading the source: highdicom's ``get_volume`` stacks the
frames into a regular grid (frames the producer left out because they were empty become
background). Segments become label values by the rule of :mod:`medseg.io.segments`; FRACTIONAL
segments count where their value is at least 0.5. A SEG whose frames do not lie on a regular 3D
grid (tilted or unevenly spaced frames) is refused with a clear message.
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

_RESAMPLE_HINT = "convert it on its source series with a tool that resamples (e.g. Slicer)"
SEG_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
    }
)


def is_dicom_seg(path: PathLike) -> bool:
    """Whether ``path`` is a DICOM file of a Segmentation SOP class (header only)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return str(header.get("SOPClassUID", "")) in SEG_SOP_CLASSES


def _open(path: Path) -> Any:
    hd = require("highdicom", purpose="reading DICOM SEG")
    try:
        return hd.seg.segread(path)
    except Exception as err:  # highdicom raises many kinds for malformed objects
        raise DataError(f"unreadable DICOM SEG ({type(err).__name__}: {err})", path=path) from err


def _segments(seg: Any) -> list[Segment]:
    return [
        Segment(int(item.SegmentNumber), str(getattr(item, "SegmentLabel", "") or ""))
        for item in seg.SegmentSequence
    ]


def _has_positions(seg: Any) -> bool:
    per_frame = seg.get("PerFrameFunctionalGroupsSequence", [])
    groups = [*seg.get("SharedFunctionalGroupsSequence", []), *per_frame[:1]]
    return "FrameOfReferenceUID" in seg and any("PlanePositionSequence" in g for g in groups)


def _check_geometry(seg: Any, path: Path) -> None:
    """Refuse SEGs that cannot be a 3D label map, before reading any frame."""
    if str(getattr(seg, "coordinate_system", "") or "").upper().endswith("SLIDE"):
        raise DataError("slide-microscopy SEG (slide coordinates) is not a 3D label map", path=path)
    if not _has_positions(seg):
        raise DataError(
            "the SEG frames have no positions on a 3D patient grid (no Frame of Reference or "
            "plane positions, e.g. a SEG of a projection radiograph); it cannot be compared "
            "with a label map",
            path=path,
        )
    geometry = getattr(seg, "get_volume_geometry", None)
    if geometry is not None and geometry() is None:
        raise DataError(
            "the SEG frames do not form a regular 3D grid (uneven slice spacing or tilted frames)",
            path=path,
            hint=_RESAMPLE_HINT,
        )


def _volume(seg: Any, path: Path) -> Any:
    _check_geometry(seg, path)
    try:
        return seg.get_volume(combine_segments=False)
    except (RuntimeError, ValueError) as err:
        raise DataError(
            f"the SEG frames do not form a regular 3D grid ({err})", path=path, hint=_RESAMPLE_HINT
        ) from err


def read_dicom_seg(path: PathLike, *, label_names: Mapping[int, str] | None = None) -> Volume:
    """Read a DICOM SEG as one integer label map on the grid its frames describe.

    Args:
        path: the SEG file (BINARY, FRACTIONAL or LABELMAP type).
        label_names: ``{value: name}`` used to map segments by name (see :mod:`.segments`).

    Returns:
        :class:`Volume`: integer label map ``(X, Y, Z)`` = (column, row, slice) with its RAS
        affine (mm); ``meta["segments"]`` lists ``{"name", "label"}`` per mapped segment.

    Raises:
        DataError: unreadable object, irregular frame geometry, slide coordinates.
    """
    source = Path(path)
    seg = _open(source)
    segments = _segments(seg)
    values = segment_label_values(segments, label_names)
    volume = _volume(seg, source)
    stack = np.asarray(volume.array)  # (slice, row, column, segment), segments in number order
    numbers = sorted(s.number for s in segments)
    masks = [
        (values[n], np.transpose(stack[..., i] >= 0.5, (2, 1, 0)))
        for i, n in enumerate(numbers)
        if n in values
    ]
    labels, overlap = combine_segment_masks(masks, stack.shape[2::-1])
    affine = np.asarray(volume.affine, dtype=np.float64)[:, [2, 1, 0, 3]]  # -> (col, row, slice)
    mapped = [{"name": s.name, "label": values[s.number]} for s in segments if s.number in values]
    meta = {"source": str(source), "format": "dicom-seg", "segments": mapped}
    return Volume(
        labels, lps_to_ras_affine(affine), {**meta, "overlap_voxels": overlap, PARTIAL_EXTENT: True}
    )
