"""Segments of other tools' segmentations (Slicer ``.seg.nrrd``, DICOM SEG) -> one label map.

A segmentation object holds named, possibly overlapping binary segments; medseg evaluates and
reports integer label maps. The mapping rule (the README documents it):

1. **By name**, when the label names are known (manifest, run report, ``dataset.json``) and at
   least one segment name equals a label name (case and surrounding spaces ignored): each such
   segment becomes that label; segments whose names match no label are left out (logged).
2. **By number** otherwise: a segment's own label value when the tool stores one and the values
   are distinct (Slicer ``Segment<i>_LabelValue`` in a single-layer file), else its segment number
   (DICOM ``SegmentNumber``; Slicer ``Segment<i>`` is number ``i + 1``).

Voxels claimed by several segments (overlapping segments, e.g. Slicer's layered 4D files) take
the highest label value, so a lesion drawn inside an organ stays a lesion; their count is logged
and kept in the volume's ``meta["overlap_voxels"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.labelmaps import label_dtype

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """One segment of a segmentation object.

    Attributes:
        number: 1-based segment number (DICOM ``SegmentNumber``; Slicer ``Segment<i>`` -> i + 1).
        name: the segment's label text (``SegmentLabel`` / Slicer ``Segment<i>_Name``).
        value: the tool's own label value for the segment, if it stores one.
    """

    number: int
    name: str
    value: int | None = None


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def segment_label_values(
    segments: Sequence[Segment], label_names: Mapping[int, str] | None = None
) -> dict[int, int]:
    """Label value of each segment (by segment number), following the module's rule.

    Args:
        segments: the object's segments.
        label_names: ``{label value: name}`` known for the data set (background optional).

    Returns:
        ``{segment number: label value}``; segments left out (rule 1) are absent.
    """
    by_name = {_key(n): v for v, n in (label_names or {}).items() if v != 0}
    named = {s.number: by_name[_key(s.name)] for s in segments if _key(s.name) in by_name}
    if named:
        left = [s.name for s in segments if s.number not in named]
        if left:
            logger.warning("segments %s match no label name; left out", left)
        return named
    own = [s.value for s in segments]
    if all(v is not None and v > 0 for v in own) and len(set(own)) == len(own):
        return {s.number: int(s.value) for s in segments}  # type: ignore[arg-type]
    return {s.number: s.number for s in segments}


def combine_segment_masks(
    masks: Iterable[tuple[int, npt.NDArray[np.bool_]]], shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.integer], int]:
    """One label map from ``(label value, mask)`` pairs; overlaps take the highest value.

    Args:
        masks: label value and boolean mask, each of ``shape``.
        shape: array shape of every mask.

    Returns:
        The label map (dtype by :func:`medseg.labelmaps.label_dtype`) and the number of voxels
        claimed by more than one segment.
    """
    ordered = sorted(masks, key=lambda item: item[0])
    labels = np.zeros(shape, dtype=label_dtype(max((v for v, _ in ordered), default=0)))
    claimed = np.zeros(shape, dtype=np.uint16)
    for value, mask in ordered:
        claimed += mask.astype(np.uint8)
        labels[mask] = value
    overlap = int(np.count_nonzero(claimed > 1))
    if overlap:
        logger.warning("%d voxels lie in several segments; the highest label value kept", overlap)
    return labels, overlap
