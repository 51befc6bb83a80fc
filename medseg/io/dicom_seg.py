"""DICOM SEG output (highdicom): a label map on a DICOM series' grid -> one SEG object.

The SEG references the source series (its SOP instances), has one segment per foreground label
with the label's name, and one frame per source slice (single-frame series) or source frame
(multi-frame images such as Ophthalmic Tomography), so viewers place it on the source images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg._optional import require
from medseg._version import __version__
from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.io.volume import Volume
from medseg.types import PathLike


def _segment(number: int, name: str) -> Any:
    hd = require("highdicom", purpose="writing DICOM SEG")
    from pydicom.sr.codedict import codes

    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="medseg", version=__version__, family=codes.cid7162.ArtificialIntelligence
        ),
    )


def _frames(
    labels: npt.NDArray[Any], values: Sequence[int], order: Sequence[int] | None
) -> npt.NDArray[np.uint8]:
    """``(frames, rows, columns, segments)`` binary masks in source frame order."""
    stack = np.stack([labels == v for v in values], axis=-1)  # (X, Y, Z, S)
    frames = np.transpose(stack, (2, 1, 0, 3)).astype(np.uint8)  # (Z, rows, cols, S)
    if order is not None:  # volume slice k came from source frame order[k]
        restored = np.zeros_like(frames)
        restored[np.asarray(order)] = frames
        frames = restored
    return frames


def write_dicom_seg(
    labels: Volume,
    source_files: Sequence[PathLike],
    path: PathLike,
    *,
    label_names: Mapping[int, str],
    series_number: int = 9001,
    frame_order: Sequence[int] | None = None,
) -> Path:
    """Write ``labels`` (on the grid of the DICOM series in ``source_files``) as a DICOM SEG.

    Args:
        labels: integer label map read on the source grid; for single-frame series its slice ``k``
            corresponds to ``source_files[k]``.
        source_files: the series' files in volume slice order (one multi-frame file allowed).
        path: output ``.seg.dcm``.
        label_names: ``{value: name}`` of the foreground labels to write as segments.
        series_number: SeriesNumber of the new SEG series.
        frame_order: for a multi-frame source, the source frame index of each volume slice.

    Raises:
        DataError: the source files cannot be read or do not match the label map.
    """
    hd = require("highdicom", extra=None, purpose="writing DICOM SEG")
    import pydicom
    from pydicom.uid import generate_uid

    try:
        sources = [pydicom.dcmread(f) for f in source_files]
    except Exception as err:
        raise DataError(f"cannot read the source series for DICOM SEG: {err}") from err
    values = sorted(v for v in label_names if v != 0)
    frames = _frames(labels.array, values, frame_order if len(sources) == 1 else None)
    n_expected = int(sources[0].get("NumberOfFrames", 1)) if len(sources) == 1 else len(sources)
    if frames.shape[0] != n_expected:
        raise DataError(f"label map has {frames.shape[0]} slices, the source series {n_expected}")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(i + 1, label_names[v]) for i, v in enumerate(values)],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name="medseg",
        software_versions=__version__,
        device_serial_number="0",
        omit_empty_frames=False,
    )
    target = Path(path)
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    return target
