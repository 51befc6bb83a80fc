"""Heidelberg HEYEX exports (``.vol`` file, XML folder) read through eyepy, before any geometry.

Each reader returns a :class:`RawOCT`: the B-scans as eyepy shows them (``(n, depth, width)``
uint8, HEYEX display contrast), the B-scan lines as the vendor stores them on the localizer
(en-face mm: ``x`` to the right of the localizer image, ``y`` down), the pixel sizes, the localizer
(SLO/NIR) image and the metadata medseg keeps (eye, scan date, device, patient ID; never names
or birth dates). :mod:`medseg.io.oct_vendor` turns it into world geometry.

eyepy (the ``oct`` extra) is imported on first use; a missing eyepy raises
:class:`~medseg.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg._optional import require
from medseg.errors import DataError

logger = logging.getLogger(__name__)

EXTRA = "oct"
HEYEX_PATTERNS = {
    0: "unknown",
    1: "line",
    2: "circle",
    3: "volume (ART)",
    4: "volume (fast)",
    5: "radial",
}
"""HEYEX ``ScanPattern`` codes of the VOL header."""
_HEYEX_XML_ROOT = b"<HEDX"
_HEYEX_VOL_MAGIC = (b"HSF-", b"ep-v")


@dataclass(frozen=True)
class RawOCT:
    """One vendor OCT scan as stored, before medseg places it in the world.

    Attributes:
        bscans: ``(n, depth, width)`` uint8 B-scans (row 0 = anterior, column 0 = line start).
        starts_mm: ``(n, 2)`` start point of each B-scan line on the localizer, en-face mm
            (``x`` right, ``y`` down, origin at the localizer's pixel ``(0, 0)``).
        ends_mm: ``(n, 2)`` end points, same frame (for circle scans: the circle centre).
        scale_mm: (lateral A-scan spacing, axial pixel size, stored B-scan distance or 0) in mm.
        pattern: HEYEX scan pattern name (:data:`HEYEX_PATTERNS`), ``"unknown"`` for XML.
        localizer: ``(rows, columns)`` uint8 SLO/NIR image, or ``None``.
        localizer_scale_mm: (x, y) localizer pixel size in mm.
        fovea_px: vendor's ETDRS grid centre ``(x, y)`` in localizer pixels, when placed.
        meta: format, source, laterality (OD/OS), study_date (YYYYMMDD), patient_id,
            manufacturer, device, scan_pattern, vendor_series_type.
    """

    bscans: npt.NDArray[np.uint8]
    starts_mm: npt.NDArray[np.float64]
    ends_mm: npt.NDArray[np.float64]
    scale_mm: tuple[float, float, float]
    pattern: str
    localizer: npt.NDArray[np.uint8] | None
    localizer_scale_mm: tuple[float, float]
    fovea_px: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def is_heyex_vol(path: Path) -> bool:
    """Whether ``path`` is a HEYEX VOL file (version tag ``HSF-OCT-...``, or eyepy's ``ep-v``)."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(12).startswith(_HEYEX_VOL_MAGIC)


def is_heyex_xml(path: Path) -> bool:
    """Whether ``path`` is a HEYEX XML export file (root element ``HEDX``)."""
    if path.suffix.lower() != ".xml" or not path.is_file():
        return False
    with path.open("rb") as handle:
        return _HEYEX_XML_ROOT in handle.read(512)


def _eyepy_io() -> Any:
    return require("eyepy.io", extra=EXTRA, purpose="reading Heidelberg HEYEX OCT exports")


def _laterality(value: object) -> str | None:
    text = str(value or "").strip().upper()
    if text in ("OD", "R", "RIGHT"):
        return "OD"
    if text in ("OS", "L", "LEFT"):
        return "OS"
    return None


def _date(iso: object) -> str | None:
    """``YYYYMMDD`` from eyepy's ISO date strings (``None`` when absent)."""
    text = str(iso or "")
    digits = text[:10].replace("-", "")
    return digits if len(digits) == 8 and digits.isdigit() else None


def _lines(bscan_meta: list[Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    starts = np.array([m["start_pos"] for m in bscan_meta], dtype=np.float64).reshape(-1, 2)
    ends = np.array([m["end_pos"] for m in bscan_meta], dtype=np.float64).reshape(-1, 2)
    return starts, ends


def _to_uint8(data: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    if data.dtype == np.uint8:
        return data
    if np.issubdtype(data.dtype, np.floating) and np.nanmax(data, initial=0.0) <= 1.0:
        data = data * 255.0  # intensities in [0, 1]
    return np.clip(np.rint(np.nan_to_num(data.astype(np.float64))), 0, 255).astype(np.uint8)


def read_heyex_vol(path: Path) -> RawOCT:
    """Read a HEYEX ``.vol`` raw export (any scan pattern) through eyepy's ``HeVolReader``.

    Raises:
        DataError: the file is not a readable VOL export.
    """
    eio = _eyepy_io()
    from eyepy.core.utils import intensity_transforms

    try:
        reader = eio.HeVolReader(path)
        parsed = reader.parsed_file
        raw = np.stack([np.asarray(b.data) for b in parsed.bscans], axis=0)
        bscan_meta = reader.bscan_meta
    except Exception as err:  # construct raises many types for truncated/foreign files
        raise DataError(
            f"not a readable Heidelberg VOL file ({type(err).__name__}: {err})", path=path
        ) from err
    starts, ends = _lines(bscan_meta)
    meta = {
        "format": "heyex_vol",
        "laterality": _laterality(parsed.scan_position),
        "study_date": _date(reader.meta["visit_date"]),
        "patient_id": str(parsed.patient_id).strip() or None,
        "manufacturer": "Heidelberg Engineering",
        "device": "Spectralis",
        "vendor_version": str(parsed.version).strip(),
    }
    return RawOCT(
        bscans=_to_uint8(intensity_transforms[reader.intensity_transform](raw)),
        starts_mm=starts,
        ends_mm=ends,
        scale_mm=(float(parsed.scale_x), float(parsed.scale_y), float(parsed.distance)),
        pattern=HEYEX_PATTERNS.get(int(parsed.scan_pattern), "unknown"),
        localizer=np.asarray(parsed.localizer, dtype=np.uint8),
        localizer_scale_mm=(float(parsed.scale_x_slo), float(parsed.scale_y_slo)),
        meta=meta,
    )


def _xml_text(root: Any, xpath: str) -> str | None:
    found = root.find(xpath)
    return None if found is None or found.text is None else found.text.strip()


def xml_fovea_px(root: Any) -> tuple[float, float] | None:
    """The ETDRS grid centre HEYEX stores (localizer pixels), unless it sits at its default."""
    grid = "./Patient/Study/Series/ThicknessGrid"
    if (_xml_text(root, f"{grid}/IsDefaultPos") or "true").lower() != "false":
        return None
    x, y = (
        _xml_text(root, f"{grid}/CenterPos/Coord/X"),
        _xml_text(root, f"{grid}/CenterPos/Coord/Y"),
    )
    if x is None or y is None:
        return None
    return float(x), float(y)


def _xml_bscans(reader: Any, folder: Path, bscan_meta: list[Any]) -> npt.NDArray[np.uint8]:
    """B-scan images through eyepy; scan patterns eyepy refuses are read file by file."""
    try:
        return _to_uint8(np.asarray(reader.volume.data))
    except ValueError:
        import imageio.v3 as iio  # an eyepy dependency

        images = [np.asarray(iio.imread(folder / m["scan_name"])) for m in bscan_meta]
        return _to_uint8(np.stack([i[..., 0] if i.ndim == 3 else i for i in images], axis=0))


def read_heyex_xml(path: Path) -> RawOCT:
    """Read a HEYEX XML export (the ``.xml`` file or its folder) through eyepy's ``HeXmlReader``.

    Raises:
        DataError: no/unreadable XML, or a B-scan/localizer image it names is missing.
    """
    eio = _eyepy_io()
    xml = path if path.suffix.lower() == ".xml" else next(iter(sorted(path.glob("*.xml"))), path)
    try:
        reader = eio.HeXmlReader(xml)
        root = reader.xml_root[0]
        values = reader.parsed_values
        bscan_meta = reader.bscan_meta
        bscans = _xml_bscans(reader, xml.parent, bscan_meta)
        localizer = np.asarray(reader.localizer.data, dtype=np.uint8)
    except FileNotFoundError as err:
        raise DataError(f"HEYEX XML export is incomplete: {err}", path=xml) from err
    except Exception as err:  # XML/TIFF parse errors come in many types
        raise DataError(
            f"not a readable HEYEX XML export ({type(err).__name__}: {err})", path=xml
        ) from err
    starts, ends = _lines(bscan_meta)
    series = "./Patient/Study/Series"
    meta = {
        "format": "heyex_xml",
        "laterality": _laterality(_xml_text(root, f"{series}/Laterality")),
        "study_date": _date(values.get("visit_date")),
        "patient_id": _xml_text(root, "./Patient/PatientID"),
        "manufacturer": _xml_text(root, f"{series}/GeneralEquipment/Manufacturer"),
        "device": _xml_text(root, f"{series}/GeneralEquipment/ManufacturerModelName"),
        "vendor_series_type": _xml_text(root, f"{series}/Type"),
        "vendor_version": values.get("version"),
    }
    return RawOCT(
        bscans=bscans,
        starts_mm=starts,
        ends_mm=ends,
        scale_mm=(float(values["scale_x"]), float(values["scale_y"]), 0.0),
        pattern="unknown",
        localizer=localizer,
        localizer_scale_mm=(float(values["scale_x_slo"]), float(values["scale_y_slo"])),
        fovea_px=xml_fovea_px(root),
        meta=meta,
    )


@dataclass(frozen=True)
class HeyexHeader:
    """What discovery needs from an export, read without its pixels (``pattern`` as
    :data:`HEYEX_PATTERNS`; XML exports store none, so it is classified from the B-scan lines)."""

    patient_id: str | None
    laterality: str | None
    study_date: str | None
    n_bscans: int
    pattern: str


def read_heyex_header(path: Path) -> HeyexHeader:
    """Header of a VOL file (first 2048 bytes, eyepy's VOL layout) or of a HEYEX XML export.

    Raises:
        DataError: unreadable header.
    """
    _eyepy_io()
    try:
        if path.is_dir() or path.suffix.lower() == ".xml":
            return _xml_header(path)
        import construct as cs  # an eyepy dependency
        from eyepy.io.he.vol_reader import vol_format

        names = [sub.name for sub in vol_format.subcons]
        header = cs.Struct(*vol_format.subcons[: names.index("localizer")])
        with path.open("rb") as handle:
            parsed = header.parse(handle.read(header.sizeof()))
    except DataError:
        raise
    except Exception as err:  # construct / XML parse errors come in many types
        raise DataError(
            f"unreadable HEYEX header ({type(err).__name__}: {err})", path=path
        ) from err
    return HeyexHeader(
        patient_id=str(parsed.patient_id).strip() or None,
        laterality=_laterality(parsed.scan_position),
        study_date=_date(parsed.visit_date),
        n_bscans=int(parsed.n_bscans),
        pattern=HEYEX_PATTERNS.get(int(parsed.scan_pattern), "unknown"),
    )


def _xml_header(path: Path) -> HeyexHeader:
    from medseg.io.oct_vendor import classify_lines

    xml = path if path.suffix.lower() == ".xml" else sorted(path.glob("*.xml"))[0]
    reader = _eyepy_io().HeXmlReader(xml)
    root = reader.xml_root[0]
    starts, ends = _lines(reader.bscan_meta)
    values = reader.parsed_values
    series_type = (_xml_text(root, "./Patient/Study/Series/Type") or "").lower()
    width_mm = float(values["size_x"]) * float(values["scale_x"])
    short = len(starts) == 1 and np.linalg.norm(ends[0] - starts[0]) < 0.5 * width_mm
    pattern = "circle" if "circle" in series_type or short else "unknown"
    if pattern == "unknown" and len(starts):
        layout = classify_lines(starts, ends).pattern
        pattern = {"raster": "volume", "line": "line", "bscans": "separate B-scans"}[layout]
    return HeyexHeader(
        patient_id=_xml_text(root, "./Patient/PatientID"),
        laterality=_laterality(_xml_text(root, "./Patient/Study/Series/Laterality")),
        study_date=_date(values.get("visit_date")),
        n_bscans=len(starts),
        pattern=pattern,
    )


def raw_from_eyepy(volume: Any) -> RawOCT:
    """A :class:`RawOCT` from an eyepy ``EyeVolume`` (its data, B-scan lines, scales, localizer).

    Raises:
        DataError: B-scan positions are not in mm (eyepy's B-scan folder import gives pixels).
    """
    meta = volume.meta
    bscan_meta = meta["bscan_meta"]
    if any(m.get("pos_unit", "mm") != "mm" for m in bscan_meta) or meta.get("scale_unit") != "mm":
        raise DataError("the eyepy volume has no B-scan positions in mm: no geometry to place")
    starts, ends = _lines(bscan_meta)
    localizer = volume.localizer
    return RawOCT(
        bscans=_to_uint8(np.asarray(volume.data)),
        starts_mm=starts,
        ends_mm=ends,
        scale_mm=(float(volume.scale_x), float(volume.scale_y), float(volume.scale_z or 0.0)),
        pattern="unknown",
        localizer=_to_uint8(np.asarray(localizer.data)),
        localizer_scale_mm=(float(localizer.scale_x), float(localizer.scale_y)),
        meta={"format": "eyepy", "laterality": _laterality(volume.laterality)},
    )
