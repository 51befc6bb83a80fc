"""Vendor OCT exports as :class:`Volume` objects with real geometry and their localizer image.

Formats: Heidelberg HEYEX ``.vol`` raw exports and HEYEX XML export folders, read through eyepy
(the ``oct`` extra; see :mod:`medseg.io.heyex`). Heidelberg E2E, Topcon FDA/FDS and Zeiss IMG are
recognised by their extension and refused with a clear message: no public sample file exists to
verify their geometry against.

World frame (the same as DICOM OPT and :mod:`medseg.synth.oct`): array ``(X, Y, Z)`` = (A-scan
along the B-scan, depth, B-scan); the localizer (SLO/NIR fundus image, viewed from the front)
has its columns along +L (patient left; nasal for OD, temporal for OS) and its rows along -S
(down = inferior); depth runs along +P from the first B-scan row. Vendors store no patient
position, so the localizer is placed with its centre at ``x = -32 mm`` LPS for OD and ``+32 mm``
for OS (``0`` when the eye is unknown), ``y = z = 0``, like the synthetic scans: positions are
nominal, directions and distances are the vendor's.

Scan patterns: parallel, evenly spaced B-scans (a raster) give one 3D volume whose third axis is
the real step between B-scans (not necessarily perpendicular to them). One line gives a
``(W, D, 1)`` volume whose third axis is a nominal slab of one lateral pixel. Radial/star scans
and unevenly spaced B-scans give one such 2D B-scan volume per B-scan, with a note, never a 3D
grid. Circle scans cannot be placed on a plane and are refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from medseg.errors import DataError
from medseg.io.geometry import LPS_TO_RAS, apply_affine, world_to_voxel
from medseg.io.heyex import (
    RawOCT,
    is_heyex_vol,
    is_heyex_xml,
    raw_from_eyepy,
    read_heyex_vol,
    read_heyex_xml,
)
from medseg.io.volume import Volume
from medseg.types import Affine, PathLike

logger = logging.getLogger(__name__)

EYE_CENTRE_X_MM = 32.0
"""Nominal distance (mm) of each eye's localizer centre from the mid-sagittal plane."""
PARALLEL_TOL_DEG = 0.5
"""B-scans whose directions differ by more than this are not parallel."""
EVEN_TOL = 0.1
"""A B-scan more than this fraction of the step away from a regular grid breaks the raster."""
LENGTH_TOL_PX = 2.0
UNSUPPORTED = {
    ".e2e": "Heidelberg E2E",
    ".sdb": "Heidelberg E2E (SDB)",
    ".fda": "Topcon FDA",
    ".fds": "Topcon FDS",
    ".img": "Zeiss Cirrus IMG",
}
"""Vendor formats recognised by extension but not read (no public file to verify them on)."""
Pattern = Literal["raster", "line", "bscans"]


@dataclass(frozen=True)
class Localizer:
    """The SLO/NIR fundus image of a scan and where the B-scans lie on it.

    Attributes:
        image: ``(rows, columns)`` uint8 image, as the vendor shows it (row 0 = superior).
        affine: 4x4 map of ``(column, row, 0, 1)`` to RAS mm on the en-face plane at depth 0.
        bscan_lines_px: ``(n, 2, 2)`` start and end ``(x=column, y=row)`` pixels of each B-scan
            line, as stored by the vendor.
        fovea_px: the vendor's fovea (ETDRS grid centre) ``(x, y)`` in pixels, when stored.
        modality: image type, e.g. ``"NIR"``.
    """

    image: npt.NDArray[np.uint8]
    affine: Affine
    bscan_lines_px: npt.NDArray[np.float64]
    fovea_px: tuple[float, float] | None = None
    modality: str = "NIR"

    def to_lps(self, pixels: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(..., 2)`` pixel ``(x, y)`` -> ``(..., 3)`` LPS mm on the en-face plane."""
        px = np.asarray(pixels, dtype=np.float64)
        ijk = np.concatenate([px, np.zeros((*px.shape[:-1], 1))], axis=-1)
        return np.asarray(apply_affine(LPS_TO_RAS @ self.affine, ijk), dtype=np.float64)

    def to_px(self, points_lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(..., 3)`` LPS mm -> ``(..., 2)`` pixel ``(x, y)`` of their en-face projection."""
        ijk = world_to_voxel(LPS_TO_RAS @ self.affine, points_lps)
        return np.asarray(ijk[..., :2], dtype=np.float64)


@dataclass(frozen=True)
class LineLayout:
    """How the B-scan lines are arranged: a raster (with its step), one line, or loose B-scans."""

    pattern: Pattern
    start_mm: npt.NDArray[np.float64]
    direction: npt.NDArray[np.float64]
    step_mm: npt.NDArray[np.float64] | None = None
    note: str | None = None


@dataclass(frozen=True)
class VendorScan:
    """What :func:`read_vendor_oct` returns: the volume(s), how they were built, the localizer.

    ``volumes`` holds one volume for a raster or a single line, and one ``(W, D, 1)`` volume per
    B-scan otherwise (``pattern == "bscans"``); every volume's ``meta`` carries the localizer.
    """

    volumes: list[Volume]
    pattern: Pattern
    localizer: Localizer | None
    notes: list[str] = field(default_factory=list)


def vendor_format(path: PathLike) -> str | None:
    """``"heyex_vol"``, ``"heyex_xml"``, an unsupported vendor format's name, or ``None``."""
    p = Path(path)
    if p.is_dir():
        xmls = sorted(p.glob("*.xml"))
        return "heyex_xml" if len(xmls) == 1 and is_heyex_xml(xmls[0]) else None
    suffix = p.suffix.lower()
    if suffix == ".vol":
        return "heyex_vol" if is_heyex_vol(p) else None
    if is_heyex_xml(p):
        return "heyex_xml"
    if suffix == ".img" and p.with_suffix(".hdr").exists():
        return None  # an Analyze image/header pair, not a Zeiss cube
    return UNSUPPORTED.get(suffix)


def is_vendor_oct(path: PathLike) -> bool:
    """Whether medseg reads ``path`` as a vendor OCT export (VOL file, HEYEX XML file/folder)."""
    return vendor_format(path) in ("heyex_vol", "heyex_xml")


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def _directions(starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64]) -> npt.NDArray:
    vectors = ends - starts
    lengths = np.linalg.norm(vectors, axis=1)
    if np.any(lengths <= 0):
        raise DataError("a B-scan line has zero length (start equals end)")
    return np.asarray(vectors / lengths[:, None], dtype=np.float64)


def _raster_fit(
    starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """The regular grid ``p_k = p_0 + k * step`` from the first to the last B-scan.

    Returns the step (en-face mm; mean of the start and end displacements) and the largest
    distance of any start or end from its grid position (mm).
    """
    k = np.arange(len(starts), dtype=np.float64)[:, None]
    step = ((starts[-1] - starts[0]) + (ends[-1] - ends[0])) / (2.0 * (len(starts) - 1))
    residual = max(
        float(np.linalg.norm(starts - (starts[0] + k * step), axis=1).max()),
        float(np.linalg.norm(ends - (ends[0] + k * step), axis=1).max()),
    )
    return np.asarray(step, dtype=np.float64), residual


def classify_lines(starts_mm: npt.ArrayLike, ends_mm: npt.ArrayLike) -> LineLayout:
    """Decide whether B-scan lines form a raster, one line, or must stay separate B-scans.

    Args:
        starts_mm: ``(n, 2)`` line starts, en-face mm.
        ends_mm: ``(n, 2)`` line ends, same frame.

    Returns:
        :class:`LineLayout`: ``raster`` (parallel within :data:`PARALLEL_TOL_DEG`, every line
        within :data:`EVEN_TOL` of a step from a regular grid, the step crossing the lines),
        ``line`` (one B-scan), else ``bscans`` with a note saying why.
    """
    starts = np.asarray(starts_mm, dtype=np.float64).reshape(-1, 2)
    ends = np.asarray(ends_mm, dtype=np.float64).reshape(-1, 2)
    dirs = _directions(starts, ends)
    mean_dir = _unit(dirs.mean(axis=0)) if np.linalg.norm(dirs.mean(axis=0)) > 0.5 else dirs[0]
    if len(starts) == 1:
        return LineLayout("line", starts[0], dirs[0])
    angles = np.degrees(np.arccos(np.clip(dirs @ mean_dir, -1.0, 1.0)))
    if angles.max() > PARALLEL_TOL_DEG:
        note = (
            f"{len(starts)} B-scans are not parallel (directions differ by up to "
            f"{angles.max():.1f}°, e.g. a radial/star scan): read as separate 2D B-scans"
        )
        return LineLayout("bscans", starts[0], dirs[0], note=note)
    step, residual = _raster_fit(starts, ends)
    size = float(np.linalg.norm(step))
    across = abs(float(mean_dir[0] * step[1] - mean_dir[1] * step[0]))
    if size == 0 or across < 0.5 * size or residual > EVEN_TOL * size:
        note = (
            f"{len(starts)} parallel B-scans are not evenly spaced across the scan (a B-scan lies "
            f"{residual * 1000:.0f} µm from a regular {size * 1000:.0f} µm grid): read as "
            "separate 2D B-scans"
        )
        return LineLayout("bscans", starts[0], dirs[0], note=note)
    return LineLayout("raster", starts[0], mean_dir, step_mm=step)


def eye_centre_x_mm(laterality: str | None) -> float:
    """Nominal LPS ``x`` of an eye's localizer centre: -32 mm (OD), +32 mm (OS), 0 (unknown)."""
    return {"OD": -EYE_CENTRE_X_MM, "OS": EYE_CENTRE_X_MM}.get(laterality or "", 0.0)


def enface_vector_lps(vector_mm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """En-face ``(x right, y down)`` mm vector -> LPS vector (``x`` along +L, ``y`` along -S)."""
    v = np.asarray(vector_mm, dtype=np.float64)
    return np.stack([v[..., 0], np.zeros_like(v[..., 0]), -v[..., 1]], axis=-1)


def enface_origin_lps(raw: RawOCT) -> npt.NDArray[np.float64]:
    """LPS position of the en-face origin (localizer pixel ``(0, 0)``) for this eye."""
    if raw.localizer is not None:
        rows, cols = raw.localizer.shape
        sx, sy = raw.localizer_scale_mm
        centre = np.array([(cols - 1) / 2.0 * sx, (rows - 1) / 2.0 * sy])
    else:
        centre = np.concatenate([raw.starts_mm, raw.ends_mm]).mean(axis=0)
    return np.array([eye_centre_x_mm(raw.meta.get("laterality")) - centre[0], 0.0, centre[1]])


def bscan_affine(
    origin_lps: npt.NDArray[np.float64],
    start_mm: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    third_mm: npt.NDArray[np.float64],
    scale_mm: tuple[float, float],
) -> Affine:
    """RAS affine of ``(A-scan, depth, B-scan)`` voxels.

    Args:
        origin_lps: LPS of the en-face origin (:func:`enface_origin_lps`).
        start_mm: en-face mm of A-scan 0 of B-scan 0.
        direction: unit en-face direction of the B-scan line.
        third_mm: en-face mm vector from one B-scan to the next (or a nominal slab normal).
        scale_mm: (lateral A-scan spacing, axial pixel size) in mm.
    """
    affine = np.eye(4)
    affine[:3, 0] = enface_vector_lps(direction) * scale_mm[0]
    affine[:3, 1] = (0.0, scale_mm[1], 0.0)
    affine[:3, 2] = enface_vector_lps(third_mm)
    affine[:3, 3] = origin_lps + enface_vector_lps(start_mm)
    return LPS_TO_RAS @ affine


def localizer_of(raw: RawOCT, origin_lps: npt.NDArray[np.float64]) -> Localizer | None:
    """The :class:`Localizer` of a raw scan (``None`` when the export has no localizer)."""
    if raw.localizer is None:
        return None
    sx, sy = raw.localizer_scale_mm
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = (sx, 0, 0), (0, 0, -sy), (0, 1, 0)
    affine[:3, 3] = origin_lps
    scale = np.array([sx, sy])
    lines = np.stack([raw.starts_mm / scale, raw.ends_mm / scale], axis=1)
    return Localizer(raw.localizer, LPS_TO_RAS @ affine, lines, raw.fovea_px)


def _check_placeable(raw: RawOCT, path: Path) -> None:
    """Refuse what cannot be placed on a plane (circle scans) or does not add up."""
    n, _, width = raw.bscans.shape
    if len(raw.starts_mm) != n:
        raise DataError(f"{n} B-scan images but {len(raw.starts_mm)} B-scan positions", path=path)
    stored = float(np.linalg.norm(raw.ends_mm[0] - raw.starts_mm[0]))
    circle_like = n == 1 and stored < 0.5 * width * raw.scale_mm[0]
    series = str(raw.meta.get("vendor_series_type") or "").lower()
    if raw.pattern == "circle" or "circle" in series or circle_like:
        raise DataError(
            "circle scan (peripapillary B-scan along a circle): it lies on no plane, so medseg "
            "cannot place it in world coordinates",
            path=path,
            hint="use raster (volume), line or radial scans",
        )


def _length_note(raw: RawOCT) -> str | None:
    """A note when the stored lines are not as long as width x lateral spacing."""
    width, scale_x = raw.bscans.shape[2], raw.scale_mm[0]
    lengths = np.linalg.norm(raw.ends_mm - raw.starts_mm, axis=1)
    off = np.minimum(np.abs(lengths - width * scale_x), np.abs(lengths - (width - 1) * scale_x))
    if float(off.max()) <= LENGTH_TOL_PX * scale_x:
        return None
    return (
        f"the stored B-scan lines are {lengths.max():.3f} mm long but {width} A-scans x "
        f"{scale_x * 1000:.2f} µm span {width * scale_x:.3f} mm; A-scans are placed from the "
        "line start at the stored lateral spacing"
    )


def _read_raw(path: Path) -> RawOCT:
    fmt = vendor_format(path)
    if fmt == "heyex_vol":
        return read_heyex_vol(path)
    if fmt == "heyex_xml":
        return read_heyex_xml(path)
    if fmt is not None:
        raise DataError(
            f"{fmt} files are recognised but not read by medseg: no public sample file exists "
            "to verify their geometry",
            path=path,
            hint="export the scan as DICOM OPT, a HEYEX VOL/XML export, or NIfTI",
        )
    raise DataError("not a vendor OCT export (expected a HEYEX .vol file or XML folder)", path=path)


def _base_meta(raw: RawOCT, path: Path, pattern: Pattern, notes: list[str]) -> dict[str, object]:
    return {
        **raw.meta,
        "source": str(path),
        "modality": "OPT",
        "scan_pattern": pattern,
        "vendor_scan_pattern": raw.pattern,
        "notes": list(notes),
    }


def _bscan_step(raw: RawOCT, layout: LineLayout) -> npt.NDArray[np.float64]:
    """The step between B-scans: the fitted direction at the stored distance when that agrees
    with the positions within 5% (positions are rounded to 1 µm in exports), else the fit."""
    if layout.step_mm is None:
        return _normal(layout.direction, raw)
    fitted = float(np.linalg.norm(layout.step_mm))
    stored = raw.scale_mm[2]
    if stored > 0 and abs(stored - fitted) <= 0.05 * fitted:
        return np.asarray(layout.step_mm * (stored / fitted), dtype=np.float64)
    return layout.step_mm


def _raster_volume(
    raw: RawOCT, layout: LineLayout, origin: npt.NDArray[np.float64], meta: dict[str, object]
) -> Volume:
    third = _bscan_step(raw, layout)
    affine = bscan_affine(origin, layout.start_mm, layout.direction, third, raw.scale_mm[:2])
    return Volume(np.ascontiguousarray(raw.bscans.transpose(2, 1, 0)), affine, meta)


def _normal(direction: npt.NDArray[np.float64], raw: RawOCT) -> npt.NDArray[np.float64]:
    """Nominal slab of one lateral pixel, perpendicular to a B-scan line (en-face mm)."""
    return np.array([-direction[1], direction[0]]) * raw.scale_mm[0]


def _single_bscans(
    raw: RawOCT, origin: npt.NDArray[np.float64], meta: dict[str, object]
) -> list[Volume]:
    volumes = []
    for k, direction in enumerate(_directions(raw.starts_mm, raw.ends_mm)):
        affine = bscan_affine(
            origin, raw.starts_mm[k], direction, _normal(direction, raw), raw.scale_mm[:2]
        )
        array = np.ascontiguousarray(raw.bscans[k].T[:, :, None])
        volumes.append(Volume(array, affine, {**meta, "bscan_index": k}))
    return volumes


def read_vendor_oct(path: PathLike) -> VendorScan:
    """Read a vendor OCT export with its geometry, metadata and localizer.

    Args:
        path: a HEYEX ``.vol`` file, a HEYEX XML file or its export folder.

    Returns:
        :class:`VendorScan`: ``(W, D, n)`` uint8 volume(s) (A-scan, depth, B-scan) with RAS
        affines in mm (see the module docstring for the frame); ``meta`` holds ``format``,
        ``source``, ``modality`` (``"OPT"``), ``laterality``, ``study_date``, ``patient_id``,
        ``manufacturer``, ``device``, ``scan_pattern``, ``notes`` and the ``localizer``.

    Raises:
        DataError: unreadable, unsupported format, circle scan, inconsistent positions.
        MissingDependencyError: eyepy (the ``oct`` extra) is not installed.
    """
    source = Path(path)
    if not source.exists():
        raise DataError("file or folder does not exist", path=source)
    return scan_from_raw(_read_raw(source), source)


def scan_from_raw(raw: RawOCT, source: Path) -> VendorScan:
    """Place a :class:`~medseg.io.heyex.RawOCT` in the world (see :func:`read_vendor_oct`)."""
    _check_placeable(raw, source)
    layout = classify_lines(raw.starts_mm, raw.ends_mm)
    notes = [n for n in (layout.note, _length_note(raw)) if n]
    for note in notes:
        logger.info("%s: %s", source.name, note)
    if layout.pattern == "line":
        notes.append("one B-scan: the third axis is a nominal slab of one lateral pixel")
    origin = enface_origin_lps(raw)
    localizer = localizer_of(raw, origin)
    meta = {**_base_meta(raw, source, layout.pattern, notes), "localizer": localizer}
    if layout.pattern == "bscans":
        return VendorScan(_single_bscans(raw, origin, meta), "bscans", localizer, notes)
    return VendorScan([_raster_volume(raw, layout, origin, meta)], layout.pattern, localizer, notes)


def scan_from_eyepy(volume: object, *, source: str = "eyepy") -> VendorScan:
    """Place an eyepy ``EyeVolume`` (from any eyepy reader, or built in memory) in the world.

    Uses its data, B-scan positions (mm on its localizer), pixel sizes, laterality and
    localizer exactly as :func:`read_vendor_oct` uses a HEYEX export's.
    """
    return scan_from_raw(raw_from_eyepy(volume), Path(source))


def read_vendor_volume(path: PathLike) -> Volume:
    """The one volume of a raster or line export (:func:`read_vendor_oct`).

    Raises:
        DataError: the export holds separate 2D B-scans (radial or unevenly spaced), which form
            no 3D grid; the message carries the reader's note.
    """
    scan = read_vendor_oct(path)
    if scan.pattern == "bscans":
        raise DataError(
            f"{scan.notes[0]}; they form no 3D volume",
            path=path,
            hint="read them one by one with medseg.io.oct_vendor.read_vendor_oct",
        )
    return scan.volumes[0]
