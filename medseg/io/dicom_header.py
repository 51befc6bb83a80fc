"""Header-only DICOM reading, fast.

Discovery must open thousands of files without touching pixel data. :func:`read_header` parses the
few attributes medseg needs directly from the first kilobytes of the file for the common encodings
(explicit and implicit VR little endian), and falls back to pydicom for everything else (big
endian, deflate, multi-frame functional groups, odd files). Values are returned as plain Python
types in a frozen :class:`DicomHeader`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = {IMPLICIT_LE, EXPLICIT_LE, "1.2.840.10008.1.2.2"}

# tag -> (attribute name, VR used when the file is implicit VR)
_TAGS: dict[int, tuple[str, str]] = {
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080060: ("Modality", "CS"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00100020: ("PatientID", "LO"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180088: ("SpacingBetweenSlices", "DS"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200060: ("Laterality", "CS"),
    0x00200062: ("ImageLaterality", "CS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
}
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"SQ",
    b"UT",
    b"UN",
    b"OD",
    b"OL",
    b"OV",
    b"SV",
    b"UV",
    b"UC",
    b"UR",
}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


class NotDicomError(Exception):
    """The file is not DICOM (no preamble and pydicom cannot make sense of it)."""


class CorruptDicomError(Exception):
    """The file looks like DICOM but its header cannot be parsed, or its pixel data is truncated."""


@dataclass(frozen=True)
class DicomHeader:
    """The attributes of one DICOM file that discovery and QC use (no pixel data).

    Geometry values are in DICOM patient coordinates (LPS, mm); ``pixel_spacing`` is
    (row spacing, column spacing) as in the standard. Multi-frame files carry one position per
    frame in ``frame_positions`` (read from the functional groups by the pydicom fallback).
    """

    path: Path
    transfer_syntax: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    study_date: str = ""
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None
    acquisition_number: int | None = None
    instance_number: int | None = None
    image_type: tuple[str, ...] = ()
    laterality: str = ""
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    samples_per_pixel: int = 1
    bits_allocated: int = 16
    orientation: tuple[float, ...] | None = None
    position: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    frame_positions: tuple[tuple[float, ...], ...] | None = field(default=None, repr=False)

    @property
    def is_multiframe(self) -> bool:
        """More than one frame in the file."""
        return self.n_frames > 1


def _value_vr(vr: bytes, dictionary_vr: str) -> str:
    """The VR to decode a value with: the dictionary's when implicit or stored as UN."""
    return dictionary_vr if vr in (b"", b"UN") else vr.decode("latin-1")


def _decode_named(name: str, raw: bytes, vr: str) -> Any:
    """:func:`_decode`, a malformed value raising :class:`CorruptDicomError` naming ``name``."""
    try:
        return _decode(raw, vr)
    except ValueError as err:
        text = raw[:64].decode("latin-1", errors="replace").strip(" \x00")
        raise CorruptDicomError(f"malformed {name} ({vr}) value {text!r}") from err


def _decode(raw: bytes, vr: str) -> Any:
    if vr == "US":
        return struct.unpack_from("<H", raw)[0] if len(raw) >= 2 else None
    text = raw.decode("latin-1").strip(" \x00")
    if vr in {"DS", "IS"}:
        parts = [p.strip() for p in text.split("\\") if p.strip()]
        nums = [float(p) if vr == "DS" else int(float(p)) for p in parts]
        return nums if len(nums) != 1 else nums[0]
    if vr == "CS" and "\\" in text:
        return [p.strip() for p in text.split("\\")]
    return text


class _Buffer:
    """Reads a file lazily in growing chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = os.path.getsize(path)
        with open(path, "rb") as fp:
            self.data = fp.read(min(self.size, 4096))

    def need(self, end: int) -> bool:
        """Make sure bytes up to ``end`` are loaded; False if the file is shorter."""
        if end <= len(self.data):
            return True
        if end > self.size:
            return False
        with open(self.path, "rb") as fp:
            self.data = fp.read(max(end, 2 * len(self.data)))
        return end <= len(self.data)


def _element_header(buf: _Buffer, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
    """(tag, vr, value length, value offset) of the element at ``pos``."""
    if not buf.need(pos + 8):
        raise CorruptDicomError("header ends in the middle of an element")
    group, elem = struct.unpack_from("<HH", buf.data, pos)
    tag = (group << 16) | elem
    if tag in (_ITEM, _ITEM_END, _SEQ_END) or not explicit:
        return tag, b"", struct.unpack_from("<I", buf.data, pos + 4)[0], pos + 8
    vr = buf.data[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        if not buf.need(pos + 12):
            raise CorruptDicomError("header ends in the middle of an element")
        return tag, vr, struct.unpack_from("<I", buf.data, pos + 8)[0], pos + 12
    return tag, vr, struct.unpack_from("<H", buf.data, pos + 6)[0], pos + 8


def _skip_undefined(buf: _Buffer, pos: int, explicit: bool) -> int:
    """Offset after a sequence/item of undefined length starting at ``pos`` (its content)."""
    depth = 1
    while depth:
        tag, vr, length, value = _element_header(buf, pos, explicit)
        if tag in (_SEQ_END, _ITEM_END):
            depth -= 1
            pos = value
        elif tag == _ITEM:
            pos = value if length == _UNDEFINED else value + length
            depth += 1 if length == _UNDEFINED else 0
        elif length == _UNDEFINED:
            pos = _skip_undefined(buf, value, explicit and vr != b"UN")
        else:
            pos = value + length
    return pos


def _fast_parse(buf: _Buffer) -> dict[str, Any] | None:
    """Parse the wanted attributes; None when the encoding needs the pydicom fallback."""
    if len(buf.data) < 132 or buf.data[128:132] != b"DICM":
        return None
    pos, meta_end, syntax = 132, None, ""
    while True:  # file meta group (always explicit VR little endian)
        tag, _, length, value = _element_header(buf, pos, True)
        if tag >> 16 != 0x0002:
            break
        if not buf.need(value + length):
            raise CorruptDicomError("file meta information is truncated")
        if tag == 0x00020010:
            syntax = buf.data[value : value + length].decode("latin-1").strip(" \x00")
        pos = value + length
        meta_end = pos
    if meta_end is None or (syntax not in (IMPLICIT_LE, EXPLICIT_LE) and syntax in UNCOMPRESSED):
        return None
    if syntax == "1.2.840.10008.1.2.1.99":  # deflated
        return None
    explicit = syntax != IMPLICIT_LE
    values: dict[str, Any] = {"TransferSyntaxUID": syntax}
    while True:
        tag, vr, length, value = _element_header(buf, pos, explicit)
        if tag == _PIXEL_DATA:
            values["_pixel_offset"], values["_pixel_length"] = value, length
            return values
        if tag == 0x52009229 or tag == 0x52009230:  # functional groups: let pydicom read them
            return None
        if length == _UNDEFINED:  # UN of undefined length holds implicit VR data (PS3.5 6.2.2)
            pos = _skip_undefined(buf, value, explicit and vr != b"UN")
        else:
            if tag in _TAGS:
                name, dictionary_vr = _TAGS[tag]
                if not buf.need(value + length):
                    raise CorruptDicomError(f"element {name} is truncated")
                values[name] = _decode_named(
                    name, buf.data[value : value + length], _value_vr(vr, dictionary_vr)
                )
            pos = value + length
        if pos >= buf.size:
            return values


def dcmread_full(path: str | os.PathLike[str]) -> Any:
    """Read a whole DICOM file (pixels included) with pydicom, files without file meta too.

    A bare dataset (no preamble, no file meta: old exports) gets the Transfer Syntax UID of
    the encoding pydicom detected, so its pixel data decodes.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    ds = pydicom.dcmread(path, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        if meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(_syntax_without_meta(ds))
    return ds


def _dcmread_header(fp: Any) -> Any:
    """pydicom's header read; files without the 128-byte preamble and ``DICM`` (old exports
    written without file meta information) are read with ``force`` and kept only when they carry
    DICOM UIDs (checked by :func:`read_header`)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, force=False)
    except InvalidDicomError as err:
        fp.seek(0)
        reason = "no DICOM preamble ('DICM') and no DICOM UIDs when read without it"
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        except Exception:  # anything pydicom cannot make sense of is not DICOM
            raise NotDicomError(reason) from err
        if not len(ds) or not any(k in ds for k in ("SOPClassUID", "SeriesInstanceUID")):
            raise NotDicomError(reason) from err
        return ds


def _pydicom_parse(path: Path) -> dict[str, Any]:
    """Fallback: let pydicom read the header (and multi-frame functional groups)."""
    try:
        with open(path, "rb") as fp:
            ds = _dcmread_header(fp)
            end_of_header = fp.tell()
        values: dict[str, Any] = {name: ds.get(name) for name, _ in _TAGS.values() if name in ds}
        values.update(_functional_groups(ds))
    except NotDicomError:
        raise
    except Exception as err:
        raise CorruptDicomError(f"pydicom cannot parse the header: {err}") from err
    explicit = not getattr(ds, "is_implicit_VR", False)
    values["_pixel_offset"], values["_pixel_length"] = (
        end_of_header + (12 if explicit else 8),
        _UNDEFINED,
    )
    meta = getattr(ds, "file_meta", None)
    values["TransferSyntaxUID"] = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not values["TransferSyntaxUID"] and not getattr(ds, "preamble", None):
        values["TransferSyntaxUID"] = _syntax_without_meta(ds)
    return values


def _syntax_without_meta(ds: Any) -> str:
    """Transfer syntax of a file without file meta information, as pydicom decoded it."""
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        return IMPLICIT_LE
    return EXPLICIT_LE if little in (True, None) else "1.2.840.10008.1.2.2"


def _first_item(dataset: Any, keyword: str) -> Any:
    """First item of a sequence attribute, or None when absent or empty."""
    seq = dataset.get(keyword) if dataset is not None else None
    return seq[0] if seq else None


def frame_group_item(ds: Any, group: str, frame: int) -> Any:
    """Item of functional group ``group`` (e.g. ``PlanePositionSequence``) that applies to
    ``frame`` (0-based) of a multi-frame dataset: per-frame first, then shared; None if absent."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    sources = [*per_frame[frame : frame + 1], _first_item(ds, "SharedFunctionalGroupsSequence")]
    for item in sources:
        found = _first_item(item, group)
        if found is not None:
            return found
    return None


def _functional_groups(ds: Any) -> dict[str, Any]:
    """Geometry of an enhanced / ophthalmic multi-frame file from its functional groups."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if "SharedFunctionalGroupsSequence" not in ds and not per_frame:
        return {}

    def find(group: str, attr: str) -> Any:
        item = frame_group_item(ds, group, 0)
        return None if item is None else item.get(attr)

    out = {
        "PixelSpacing": find("PixelMeasuresSequence", "PixelSpacing"),
        "SliceThickness": find("PixelMeasuresSequence", "SliceThickness"),
        "SpacingBetweenSlices": find("PixelMeasuresSequence", "SpacingBetweenSlices"),
        "ImageOrientationPatient": find("PlaneOrientationSequence", "ImageOrientationPatient"),
    }
    positions = [
        _floats(getattr(_first_item(f, "PlanePositionSequence"), "ImagePositionPatient", None))
        for f in per_frame
    ]
    if per_frame and all(p is not None and len(p) == 3 for p in positions):
        out["_frame_positions"] = tuple(positions)
    return {k: v for k, v in out.items() if v is not None}


def _parts(value: Any) -> list[Any]:
    """Values of a (possibly multi-valued) attribute; strings and bytes split at backslashes."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return [p for p in (t.strip(" \x00") for t in value.split("\\")) if p]
    if isinstance(value, (int, float)):
        return [value]
    return list(value)


def _floats(value: Any) -> tuple[float, ...] | None:
    """Numbers of a DS/IS attribute (None when empty); ValueError when malformed."""
    if value is None:
        return None
    parts = _parts(value)
    return tuple(float(v) for v in parts) if parts else None


def _int(value: Any) -> int | None:
    """First number of an IS/US attribute as int; None when empty or malformed (non-geometric)."""
    try:
        numbers = _floats(value)
    except (TypeError, ValueError):
        return None
    return int(numbers[0]) if numbers else None


def _float(value: Any) -> float | None:
    """First number of a DS attribute; None when empty or malformed (non-geometric)."""
    try:
        numbers = _floats(value)
    except (TypeError, ValueError):
        return None
    return numbers[0] if numbers else None


def _geometry(values: dict[str, Any], name: str) -> tuple[float, ...] | None:
    """A geometric attribute's numbers; a malformed value makes the file unreadable."""
    try:
        return _floats(values.get(name))
    except (TypeError, ValueError) as err:
        raise CorruptDicomError(f"malformed {name} value {values.get(name)!r}") from err


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _build(path: Path, v: dict[str, Any]) -> DicomHeader:
    image_type = v.get("ImageType")
    if isinstance(image_type, str):
        image_type = [image_type]
    return DicomHeader(
        path=path,
        transfer_syntax=_str(v.get("TransferSyntaxUID")),
        sop_class_uid=_str(v.get("SOPClassUID")),
        sop_instance_uid=_str(v.get("SOPInstanceUID")),
        patient_id=_str(v.get("PatientID")),
        study_uid=_str(v.get("StudyInstanceUID")),
        series_uid=_str(v.get("SeriesInstanceUID")),
        study_date=_str(v.get("StudyDate")),
        modality=_str(v.get("Modality")),
        series_description=_str(v.get("SeriesDescription")),
        series_number=_int(v.get("SeriesNumber")),
        acquisition_number=_int(v.get("AcquisitionNumber")),
        instance_number=_int(v.get("InstanceNumber")),
        image_type=tuple(str(t).upper() for t in (image_type or ())),
        laterality=_str(v.get("ImageLaterality") or v.get("Laterality")).upper(),
        rows=_int(v.get("Rows")) or 0,
        columns=_int(v.get("Columns")) or 0,
        n_frames=_int(v.get("NumberOfFrames")) or 1,
        samples_per_pixel=_int(v.get("SamplesPerPixel")) or 1,
        bits_allocated=_int(v.get("BitsAllocated")) or 16,
        orientation=_geometry(v, "ImageOrientationPatient"),
        position=_geometry(v, "ImagePositionPatient"),
        pixel_spacing=_geometry(v, "PixelSpacing"),
        slice_thickness=_float(v.get("SliceThickness")),
        spacing_between_slices=_float(v.get("SpacingBetweenSlices")),
        frame_positions=v.get("_frame_positions"),
    )


def _check_pixel_length(header: DicomHeader, values: dict[str, Any], size: int) -> None:
    """Uncompressed pixel data must be complete (catches files cut off during a copy)."""
    offset, length = values.get("_pixel_offset"), values.get("_pixel_length")
    if offset is None or length is None or header.transfer_syntax not in UNCOMPRESSED:
        return
    expected = header.rows * header.columns * header.n_frames * header.samples_per_pixel
    expected = expected * header.bits_allocated // 8
    if expected == 0:  # no image (SR, RT structures...): nothing to check
        return
    available = size - offset
    if (length != _UNDEFINED and length < expected) or available < expected:
        raise CorruptDicomError(
            f"pixel data is truncated: {available} bytes in the file, {expected} expected"
        )


def read_header(path: str | os.PathLike[str]) -> DicomHeader:
    """Read the header of one DICOM file (no pixel data).

    Raises:
        NotDicomError: the file is not DICOM.
        CorruptDicomError: the header cannot be parsed or uncompressed pixel data is truncated.
    """
    p = Path(path)
    try:
        buf = _Buffer(p)
        values = _fast_parse(buf)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as err:
        raise CorruptDicomError(f"cannot parse the header: {err}") from err
    except OSError as err:
        raise CorruptDicomError(f"cannot read the file: {err.strerror or err}") from err
    if values is None:
        values = _pydicom_parse(p)
    header = _build(p, values)
    if not header.sop_class_uid and not header.series_uid:
        raise NotDicomError("no SOP Class UID and no Series Instance UID")
    _check_pixel_length(header, values, buf.size)
    return header
