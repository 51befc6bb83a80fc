"""DICOM SEG output (highdicom): a label map predicted on a DICOM series -> one SEG object.

The SEG references the source series (its SOP instances) and has one segment per foreground
label: its name, its coded concept (:mod:`medseg.coding`: category, type, anatomic region with
the eye's laterality for ophthalmic sources, colour) and the algorithm identification (name
``medseg``, version = the run's checkpoint sha256, parameters naming the medseg version and
workflow). Frames lie on the source slices (single-frame series) or source frames (multi-frame
images such as Ophthalmic Tomography); frames without any segmented pixel are left out (a
prediction with no foreground at all keeps one empty frame: a SEG needs at least one). Each frame
holds the label map *on that source frame* (:mod:`medseg.io.seg_geometry`): when the series'
slices were unevenly spaced and read onto a uniform grid, the frames are sampled back onto the
true source slices. The series has a SeriesDescription and, for ophthalmic sources, the
Laterality of the eye.

Real scanners write attributes highdicom refuses or that would make the SEG invalid (an empty
SpecificCharacterSet, a missing AccessionNumber, a free-text PatientSex, an old-style date):
:func:`clean_sources` repairs the in-memory copies of the source datasets the SEG copies its
patient and study modules from; the source files are never touched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg._optional import require
from medseg._version import __version__
from medseg.coding import Code, LabelCoding, default_coding
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
        n_frames: source frames the label map was placed on.
        frames_written: frames in the SEG (empty frames left out; per segment).
        resampled: frames were sampled back onto source slices that are not slices of the label
            map's grid (uneven spacing).
        max_offset_mm: largest distance between a source slice and the label slice it shows.
    """

    path: Path
    n_frames: int
    resampled: bool
    max_offset_mm: float
    frames_written: int = 0


@dataclass(frozen=True)
class SegContent:
    """What a SEG says besides its pixels.

    Attributes:
        label_names: ``{value: name}`` of the foreground labels to write as segments.
        codings: ``{value: LabelCoding}``; labels without one get
            :func:`~medseg.coding.default_coding` (as a lesion).
        series_description: SeriesDescription (at most 64 characters kept).
        algorithm_version: AlgorithmVersion of every segment: the run's checkpoint sha256 when
            known (see :func:`checkpoint_version`), else the medseg version.
        algorithm_parameters: AlgorithmParameters (``key=value`` pairs).
    """

    label_names: Mapping[int, str]
    codings: Mapping[int, LabelCoding] = field(default_factory=dict)
    series_description: str = "medseg segmentation"
    algorithm_version: str = __version__
    algorithm_parameters: Mapping[str, str] = field(default_factory=dict)


def checkpoint_version(sha256s: Sequence[str]) -> str:
    """AlgorithmVersion of a run: its checkpoint's sha256 (64 hex digits, the LO maximum); for
    an ensemble of several checkpoints, the sha256 of their hashes joined by ``,`` in order."""
    import hashlib

    hashes = [h for h in sha256s if h]
    if not hashes:
        return __version__
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256(",".join(hashes).encode()).hexdigest()


LATERALITY_CODES = {"R": ("24028007", "Right"), "L": ("7771000", "Left")}
"""Anatomic region modifiers (SCT, CID 244) of an eye's segments."""
EYE = Code(value="81745001", scheme="SCT", meaning="Eye")
OPHTHALMIC = ("OPT", "OP", "OPM", "OPV", "OAM")
"""Modalities whose segments lie in an eye."""


def _codes(hd: Any, code: Any) -> Any:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning, code.scheme_version)


def _segment(
    number: int, value: int, content: SegContent, laterality: str | None, organ: Code | None
) -> Any:
    """One segment description (name, codes, colour, algorithm); ``laterality`` (R/L) becomes
    the modifier of its anatomic region, ``organ`` (an eye) the region when the coding has none."""
    hd = require("highdicom", purpose="writing DICOM SEG")
    from pydicom.sr.codedict import codes

    name = content.label_names[value]
    coding = content.codings.get(value) or default_coding(name, value, lesion=True)
    region = coding.anatomic_region or (organ if laterality is not None else None)
    segment = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=_codes(hd, coding.category),
        segmented_property_type=_codes(hd, coding.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="medseg", version=content.algorithm_version[:64],
            family=codes.cid7162.ArtificialIntelligence,
            parameters=dict(content.algorithm_parameters) or None,
        ),
        anatomic_regions=[_codes(hd, region)] if region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*coding.color) if coding.color else None,
    )  # fmt: skip
    if region is not None and laterality is not None:
        code, meaning = LATERALITY_CODES[laterality]
        modifier = hd.sr.CodedConcept(code, "SCT", meaning)
        segment.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [modifier]
    return segment


def source_laterality(sources: Sequence[Any]) -> str | None:
    """``R``/``L`` of the sources' ImageLaterality or Laterality (paired organs: eyes)."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(sources[0].get(keyword) or "").strip().upper()
        if value in LATERALITY_CODES:
            return value
    return None


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
    content: SegContent,
    values: Sequence[int],
    series_number: int,
) -> Any:
    """The highdicom SEG dataset; ``frames`` ``(frames, rows, columns, segments)`` binary."""
    hd = require("highdicom", extra=None, purpose="writing DICOM SEG")
    from pydicom.uid import generate_uid

    laterality = source_laterality(sources)
    organ = EYE if str(sources[0].get("Modality", "")).upper() in OPHTHALMIC else None
    with warnings.catch_warnings():
        # highdicom warns about odd source values quoting them: patient names must not be logged
        warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom\.")
        try:
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=frames,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[
                    _segment(i + 1, v, content, laterality, organ) for i, v in enumerate(values)
                ],
                series_instance_uid=generate_uid(),
                series_number=series_number,
                sop_instance_uid=generate_uid(),
                instance_number=1,
                manufacturer="medseg",
                manufacturer_model_name="medseg",
                software_versions=__version__,
                device_serial_number="0",
                omit_empty_frames=True,
            )
        except (ValueError, TypeError, AttributeError) as err:  # highdicom's source checks
            raise DataError(f"highdicom cannot build a DICOM SEG on this source: {err}") from err
    eye = {"R": " OD", "L": " OS"}.get(laterality or "", "")
    seg.SeriesDescription = f"{content.series_description}{eye}"[:64]
    if not frames.any():
        _one_empty_frame(seg)
    return seg


def _one_empty_frame(seg: Any) -> None:
    """A prediction without foreground: keep one (empty) frame of the first segment.

    A SEG needs at least one frame, and highdicom then keeps every frame of every segment; one
    frame says the same (frames left out are background) in a fraction of the size. BINARY
    pixel data is a bit stream: one all-zero frame is ``rows x columns`` zero bits.
    """
    seg.PerFrameFunctionalGroupsSequence = seg.PerFrameFunctionalGroupsSequence[:1]
    seg.NumberOfFrames = 1
    n_bytes = (int(seg.Rows) * int(seg.Columns) + 7) // 8
    seg.PixelData = bytes(n_bytes + n_bytes % 2)


def write_dicom_seg(
    labels: Volume,
    source_files: Sequence[PathLike],
    path: PathLike,
    *,
    label_names: Mapping[int, str] | None = None,
    content: SegContent | None = None,
    series_number: int = 9001,
    frame_order: Sequence[int] | None = None,
) -> SegResult:
    """Write ``labels`` (predicted on the DICOM series in ``source_files``) as a DICOM SEG.

    Args:
        labels: integer label map with its RAS affine, on the grid the series was read onto.
        source_files: the series' files (one multi-frame file allowed); the SEG has one frame per
            source frame, in source order.
        path: output ``.seg.dcm``.
        label_names: ``{value: name}`` of the foreground labels to write as segments, with the
            default codes (or give ``content``).
        content: segment names, codes, series description and algorithm identification.
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
    content = content or SegContent(label_names=dict(label_names or {}))
    values = sorted(v for v in content.label_names if v != 0)
    seg = _segmentation(
        sources, _binary_frames(masks.labels, values), content, values, series_number
    )
    target = Path(path)
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    result = SegResult(
        target, len(masks.labels), masks.resampled, float(masks.offsets_mm.max()),
        frames_written=int(seg.NumberOfFrames),
    )  # fmt: skip
    if result.resampled:
        logger.info(
            "DICOM SEG frames sampled onto %d source slices (up to %.2f mm from a label slice)",
            result.n_frames,
            result.max_offset_mm,
        )
    return result
