"""DICOM SEG output (highdicom): a label map predicted on a DICOM series -> one SEG object.

The SEG references the source series (its SOP instances), has one segment per foreground label
with the label's name, and one frame per source slice (single-frame series) or source frame
(multi-frame images such as Ophthalmic Tomography). Each frame holds the label map *on that
source frame* (:mod:`medseg.io.seg_geometry`): when the series' slices were unevenly spaced and
read onto a uniform grid, the frames are sampled back onto the true source slices.

Real scanners write attributes highdicom refuses or that would make the SEG invalid (an empty
SpecificCharacterSet, a missing AccessionNumber, a free-text PatientSex, an old-style date):
:func:`clean_sources` repairs the in-memory copies of the source datasets the SEG copies its
patient and study modules from; the source files are never touched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg._optional import require
from medseg._version import __version__
from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.io.dicom_header import dcmread_full
from medseg.io.seg_geometry import FrameMasks, masks_by_index, masks_on_frames, source_planes
from medseg.io.volume import Volume
from medseg.types import PathLike

logger = logging.getLogger(__name__)

TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
"""Type 2 attributes the SEG copies from its source: present, possibly empty."""
PATIENT_SEX_VALUES = {"M", "F", "O"}
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class SegResult:
    """What :func:`write_dicom_seg` wrote.

    Attributes:
        path: the ``.seg.dcm`` file.
        n_frames: frames written (one per source frame).
        resampled: frames were sampled back onto source slices that are not slices of the label
            map's grid (uneven spacing).
        max_offset_mm: largest distance between a source slice and the label slice it shows.
    """

    path: Path
    n_frames: int
    resampled: bool
    max_offset_mm: float


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


def _charset(value: Any) -> list[str] | None:
    """A SpecificCharacterSet highdicom and validators accept, or None for the default.

    An empty value means the default repertoire; an empty first value of several means ISO 2022
    with the default G0 set; a value highdicom does not know becomes UTF-8, which encodes every
    string pydicom decoded.
    """
    from highdicom.enum import SpecificCharacterSetValues

    known = {v.value for v in SpecificCharacterSetValues}
    values = [str(v).strip() for v in ([value] if isinstance(value, str) else value or [])]
    if not any(values):
        return None
    if not values[0]:
        values[0] = "ISO 2022 IR 6"
    return values if all(v in known for v in values) else [UTF8]


def _date_time(value: Any, vr: str) -> str:
    """A DA/TM value in the standard's form (``YYYYMMDD`` / ``HHMMSS[.ffffff]``); old forms
    such as ``2004.01.19`` or ``07:27`` are rewritten, unparsable ones emptied."""
    from pydicom.valuerep import DA, TM

    text = "" if value is None else str(value).strip()
    try:
        if vr == "DA":
            date = DA(text) if text else None
            return "" if date is None else date.strftime("%Y%m%d")
        time = TM(text.replace(":", "")) if text else None
    except (TypeError, ValueError):
        return ""
    if time is None:
        return ""
    return time.strftime("%H%M%S") + (f".{time.microsecond:06d}" if time.microsecond else "")


def clean_sources(sources: Sequence[Any], slice_thickness_mm: float) -> None:
    """Repair, in memory, what the SEG copies from its sources (see the module docstring).

    Args:
        sources: the source datasets (modified in place).
        slice_thickness_mm: SliceThickness for sources without one (the SEG's pixel measures
            need it): the label map's slice spacing.

    Raises:
        DataError: a source lacks StudyInstanceUID or FrameOfReferenceUID (the SEG could not
            reference it).
    """
    for ds in sources:
        for keyword in ("StudyInstanceUID", "FrameOfReferenceUID"):
            if not ds.get(keyword):
                raise DataError(
                    f"the source image has no {keyword}: a DICOM SEG cannot reference it",
                    path=getattr(ds, "filename", None),
                )
        charset = _charset(ds.get("SpecificCharacterSet"))
        if charset is None:
            ds.pop("SpecificCharacterSet", None)
        else:
            ds.SpecificCharacterSet = charset if len(charset) > 1 else charset[0]
        for keyword in TYPE2_PATIENT_STUDY:
            if keyword not in ds or ds[keyword].value is None:
                setattr(ds, keyword, "")
        if str(ds.PatientSex).strip().upper() not in PATIENT_SEX_VALUES:
            ds.PatientSex = ""
        for keyword, vr in (("StudyDate", "DA"), ("PatientBirthDate", "DA"), ("StudyTime", "TM")):
            setattr(ds, keyword, _date_time(ds.get(keyword), vr))
        if "PerFrameFunctionalGroupsSequence" not in ds and not ds.get("SliceThickness"):
            ds.SliceThickness = f"{slice_thickness_mm:.6g}"


def _read_sources(source_files: Sequence[PathLike]) -> list[Any]:
    try:
        return [dcmread_full(f) for f in source_files]
    except Exception as err:  # pydicom raises many types for broken files
        raise DataError(f"cannot read the source series for DICOM SEG: {err}") from err


def _masks(labels: Volume, sources: Sequence[Any], frame_order: Sequence[int] | None) -> FrameMasks:
    """Label values on each source frame: by geometry when every frame has a plane."""
    rows, columns = int(sources[0].Rows), int(sources[0].Columns)
    planes = source_planes(sources)
    if planes is not None:
        return masks_on_frames(labels, planes, rows, columns)
    n_frames = int(sources[0].get("NumberOfFrames") or 1) if len(sources) == 1 else len(sources)
    return masks_by_index(labels, frame_order if len(sources) == 1 else None, n_frames)


def _binary_frames(masks: npt.NDArray[Any], values: Sequence[int]) -> npt.NDArray[np.uint8]:
    """``(frames, rows, columns, segments)`` binary masks, segment ``s`` = label ``values[s]``."""
    return np.stack([masks == v for v in values], axis=-1).astype(np.uint8)


def _segmentation(
    sources: Sequence[Any],
    frames: npt.NDArray[np.uint8],
    label_names: Mapping[int, str],
    values: Sequence[int],
    series_number: int,
) -> Any:
    """The highdicom SEG dataset; ``frames`` ``(frames, rows, columns, segments)`` binary."""
    hd = require("highdicom", extra=None, purpose="writing DICOM SEG")
    from pydicom.uid import generate_uid

    with warnings.catch_warnings():
        # highdicom warns about odd source values quoting them: patient names must not be logged
        warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom\.")
        try:
            return hd.seg.Segmentation(
                source_images=sources,
                pixel_array=frames,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[
                    _segment(i + 1, label_names[v]) for i, v in enumerate(values)
                ],
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
        except (ValueError, TypeError, AttributeError) as err:  # highdicom's source checks
            raise DataError(f"highdicom cannot build a DICOM SEG on this source: {err}") from err


def write_dicom_seg(
    labels: Volume,
    source_files: Sequence[PathLike],
    path: PathLike,
    *,
    label_names: Mapping[int, str],
    series_number: int = 9001,
    frame_order: Sequence[int] | None = None,
) -> SegResult:
    """Write ``labels`` (predicted on the DICOM series in ``source_files``) as a DICOM SEG.

    Args:
        labels: integer label map with its RAS affine, on the grid the series was read onto.
        source_files: the series' files (one multi-frame file allowed); the SEG has one frame per
            source frame, in source order.
        path: output ``.seg.dcm``.
        label_names: ``{value: name}`` of the foreground labels to write as segments.
        series_number: SeriesNumber of the new SEG series.
        frame_order: for a multi-frame source without per-frame positions, the source frame
            index of each volume slice (frames are then matched by index).

    Raises:
        DataError: the source files cannot be read, cannot be referenced, or do not match the
            label map.
    """
    sources = _read_sources(source_files)
    clean_sources(sources, labels.spacing[2])
    masks = _masks(labels, sources, frame_order)
    values = sorted(v for v in label_names if v != 0)
    seg = _segmentation(
        sources, _binary_frames(masks.labels, values), label_names, values, series_number
    )
    target = Path(path)
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    result = SegResult(target, len(masks.labels), masks.resampled, float(masks.offsets_mm.max()))
    if result.resampled:
        logger.info(
            "DICOM SEG frames sampled onto %d source slices (up to %.2f mm from a label slice)",
            result.n_frames,
            result.max_offset_mm,
        )
    return result
