"""Series QC: checks one DICOM series' headers and derives its volume geometry.

Every finding is an :class:`~medseg.io.qc.Issue`: ``error`` means the series cannot be used as a
volume, ``warning`` means it is usable and says what medseg did. Codes: ``localizer_excluded`` /
``localizer`` (scouts), ``missing_geometry``, ``mixed_sizes``, ``mixed_orientations``,
``non_orthogonal``, ``duplicate_file``, ``duplicate_positions``, ``single_slice`` (a warning:
a one-slice volume),
``missing_slice`` (gap), ``nonuniform_spacing``, ``gantry_tilt``, ``missing_codec``,
``unsupported_codec``, ``not_grayscale``, ``multiple_multiframe``, ``no_frame_positions``,
``not_an_image`` (no pixel data: SR, RT structures, presentation states...), ``segmentation``
(a DICOM SEG is label data, not a scan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg.io import qc
from medseg.io.dicom_header import UNCOMPRESSED, DicomHeader
from medseg.io.geometry import dicom_affine_lps, slice_normal
from medseg.io.qc import Issue
from medseg.types import Spacing

LOCALIZER_TYPES = {"LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM"}
OPHTHALMIC_MODALITIES = {"OPT", "OP", "OPTBSV", "OPTENF"}
GAP_FACTOR = 1.5
NONUNIFORM_TOLERANCE = 0.01
TILT_TOLERANCE_DEG = 0.5
SEGMENTATION_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
GEOMETRY_ATTRIBUTES = {
    "ImagePositionPatient": "position",
    "ImageOrientationPatient": "orientation",
    "PixelSpacing": "pixel_spacing",
}


@dataclass
class SeriesInfo:
    """One DICOM series after QC.

    Attributes:
        headers: usable files sorted along the slice normal (one file for multi-frame series).
        excluded: files left out of the volume with the reason (localizers, duplicates).
        issues: QC findings; the series is usable when none is an error.
        affine_lps: voxel (column, row, slice) -> LPS mm, when the geometry could be derived.
        shape: volume shape ``(X, Y, Z)`` = (columns, rows, slices) as read.
        positions_mm: slice positions along the normal (mm), in sorted order.
        frame_order: for multi-frame files, frame indices in sorted order.
    """

    patient_id: str
    study_uid: str
    series_uid: str
    study_date: str
    modality: str
    series_number: int | None
    description: str
    sop_class_uid: str
    laterality: str
    headers: list[DicomHeader] = field(default_factory=list)
    excluded: list[tuple[Path, str]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    affine_lps: npt.NDArray[np.float64] | None = None
    shape: tuple[int, int, int] | None = None
    positions_mm: npt.NDArray[np.float64] | None = None
    frame_order: list[int] | None = None
    source_files: list[Path] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """No error-severity issue."""
        return not qc.has_errors(self.issues)

    @property
    def files(self) -> list[Path]:
        """Usable files in slice order."""
        return [h.path for h in self.headers]

    @property
    def folders(self) -> list[Path]:
        """Distinct folders the usable files live in."""
        return sorted({h.path.parent for h in self.headers})

    @property
    def spacing(self) -> Spacing | None:
        """Voxel size (mm) along ``(X, Y, Z)`` of the volume as read (uniform slices)."""
        if self.affine_lps is None:
            return None
        return tuple(float(v) for v in np.linalg.norm(self.affine_lps[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def needs_resampling(self) -> bool:
        """Slices are not uniformly spaced: reading interpolates onto a uniform grid."""
        return any(i.code == "nonuniform_spacing" for i in self.issues)


def check_series(headers: Sequence[DicomHeader]) -> SeriesInfo:
    """Run series QC on the headers of one series and derive its geometry."""
    first = headers[0]
    laterality = first.laterality
    if first.modality in OPHTHALMIC_MODALITIES and laterality in {"R", "L"}:
        laterality = "OD" if laterality == "R" else "OS"
    info = SeriesInfo(
        patient_id=first.patient_id,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        study_date=first.study_date,
        modality=first.modality,
        series_number=first.series_number,
        description=first.series_description,
        sop_class_uid=first.sop_class_uid,
        laterality=laterality,
        source_files=sorted(h.path for h in headers),
    )
    if not _is_scan(info, headers):
        info.headers = list(headers)
        return info
    _check_codec(info, headers)
    if any(h.samples_per_pixel != 1 for h in headers):
        info.issues.append(
            qc.error("not_grayscale", "colour images (SamplesPerPixel != 1) are not volumes")
        )
    multiframe = [h for h in headers if h.is_multiframe]
    if multiframe:
        if len(headers) > 1:
            info.issues.append(
                qc.error(
                    "multiple_multiframe",
                    f"{len(headers)} files in a series with multi-frame images",
                )
            )
        else:
            _check_multiframe(info, multiframe[0])
        return info
    _check_single_frames(info, headers)
    return info


def sop_class_name(uid: str) -> str:
    """Readable name of a SOP Class UID (the UID itself when unknown)."""
    from pydicom.uid import UID

    if uid in SEGMENTATION_SOP_CLASSES:  # newer than some pydicom versions' dictionary
        return SEGMENTATION_SOP_CLASSES[uid]
    return UID(uid).name if uid else "unknown SOP class"


def _is_scan(info: SeriesInfo, headers: Sequence[DicomHeader]) -> bool:
    """False (with an error issue) for DICOM objects that hold no image or hold label data."""
    kind = f"{sop_class_name(info.sop_class_uid)}, modality {info.modality or '?'}"
    if any(h.rows == 0 or h.columns == 0 for h in headers):
        info.issues.append(
            qc.error("not_an_image", f"no image pixel data ({kind}): not a scan", headers[0].path)
        )
        return False
    if info.sop_class_uid in SEGMENTATION_SOP_CLASSES:
        info.issues.append(
            qc.error(
                "segmentation",
                f"a DICOM SEG holds label data, not a scan ({kind}); use it as a label map",
                headers[0].path,
            )
        )
        return False
    return True


def _missing_geometry(
    headers: Sequence[DicomHeader], kind: str, names: Sequence[str] = tuple(GEOMETRY_ATTRIBUTES)
) -> str:
    """Which of the geometry attributes ``names`` are missing, and what the files are."""
    missing = [n for n in names if any(getattr(h, GEOMETRY_ATTRIBUTES[n]) is None for h in headers)]
    sop = sop_class_name(headers[0].sop_class_uid)
    return (
        f"{kind} lack {', '.join(missing)} ({sop}, modality {headers[0].modality or '?'}): "
        "no position in patient space, so not a volume"
    )


def _check_codec(info: SeriesInfo, headers: Sequence[DicomHeader]) -> None:
    syntaxes = {h.transfer_syntax for h in headers} - UNCOMPRESSED - {""}
    for syntax in sorted(syntaxes):
        from pydicom.pixels import get_decoder

        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            info.issues.append(
                qc.error("unsupported_codec", f"transfer syntax {syntax} cannot be decoded")
            )
            continue
        if not available:
            info.issues.append(
                qc.error(
                    "missing_codec",
                    f"no decoder installed for transfer syntax {syntax}; "
                    "run `pip install 'medseg[dicom-codecs]'`",
                )
            )


def _split_localizers(info: SeriesInfo, headers: Sequence[DicomHeader]) -> list[DicomHeader]:
    keep = [h for h in headers if not LOCALIZER_TYPES & set(h.image_type)]
    scouts = [h for h in headers if LOCALIZER_TYPES & set(h.image_type)]
    if scouts and keep:
        info.excluded += [(h.path, "localizer") for h in scouts]
        info.issues.append(
            qc.warning(
                "localizer_excluded",
                f"excluded {len(scouts)} localizer image(s) from the volume",
                scouts[0].path,
            )
        )
    elif scouts:
        info.issues.append(
            qc.error("localizer", f"localizer/scout series ({len(scouts)} images), not a volume")
        )
    return keep


def _check_single_frames(info: SeriesInfo, headers: Sequence[DicomHeader]) -> None:
    kept = _split_localizers(info, headers)
    if not kept:
        return
    if any(h.orientation is None or h.position is None or h.pixel_spacing is None for h in kept):
        info.issues.append(qc.error("missing_geometry", _missing_geometry(kept, "slices")))
        info.headers = list(kept)
        return
    if len({(h.rows, h.columns) for h in kept}) > 1:
        sizes = Counter(f"{h.rows}x{h.columns}" for h in kept)
        info.issues.append(
            qc.error("mixed_sizes", f"mixed image sizes in one series: {dict(sizes)}")
        )
    iops = np.array([h.orientation for h in kept], dtype=np.float64)
    if np.abs(iops - iops[0]).max() > 1e-4:
        info.issues.append(
            qc.error(
                "mixed_orientations", "images with different ImageOrientationPatient in one series"
            )
        )
    if not _orthonormal(iops[0]):
        info.issues.append(
            qc.error(
                "non_orthogonal", f"ImageOrientationPatient {tuple(iops[0])} is not orthonormal"
            )
        )
    if qc.has_errors(info.issues):
        info.headers = list(kept)
        return
    normal = slice_normal(iops[0])
    kept = sorted(kept, key=lambda h: (float(np.dot(normal, h.position)), h.instance_number or 0))  # type: ignore[arg-type]
    kept = _drop_duplicates(info, kept, normal)
    info.headers = kept
    if qc.has_errors(info.issues):
        return
    if len(kept) == 1:
        _single_slice(info, kept[0], iops[0])
        return
    positions = np.array([h.position for h in kept], dtype=np.float64)
    _check_spacing(info, positions, normal, [h.instance_number for h in kept])
    _set_geometry(info, positions, iops[0], kept[0].pixel_spacing, (kept[0].columns, kept[0].rows))  # type: ignore[arg-type]


def _orthonormal(iop: npt.NDArray[np.float64]) -> bool:
    row, col = iop[:3], iop[3:6]
    return bool(
        abs(np.linalg.norm(row) - 1) < 1e-3
        and abs(np.linalg.norm(col) - 1) < 1e-3
        and abs(np.dot(row, col)) < 1e-3
    )


def _drop_duplicates(
    info: SeriesInfo, kept: list[DicomHeader], normal: npt.NDArray[np.float64]
) -> list[DicomHeader]:
    proj = np.array([float(np.dot(normal, h.position)) for h in kept])  # type: ignore[arg-type]
    out = [kept[0]]
    dup_pairs: list[tuple[DicomHeader, DicomHeader]] = []
    for prev_proj, cur_proj, h in zip(proj[:-1], proj[1:], kept[1:]):
        if abs(cur_proj - prev_proj) < 1e-3:
            dup_pairs.append((out[-1], h))
            if h.sop_instance_uid == out[-1].sop_instance_uid:
                info.excluded.append((h.path, "duplicate file"))
                continue
        out.append(h)
    copies = [b for a, b in dup_pairs if a.sop_instance_uid == b.sop_instance_uid]
    clashes = [b for a, b in dup_pairs if a.sop_instance_uid != b.sop_instance_uid]
    if copies:
        info.issues.append(
            qc.warning(
                "duplicate_file",
                f"ignored {len(copies)} duplicate copies of the same image",
                copies[0].path,
            )
        )
    if clashes:
        info.issues.append(
            qc.error(
                "duplicate_positions",
                f"{len(clashes)} slice position(s) occur twice with different images "
                "(several acquisitions in one series?)",
                clashes[0].path,
            )
        )
    return out


def _check_spacing(
    info: SeriesInfo,
    positions: npt.NDArray[np.float64],
    normal: npt.NDArray[np.float64],
    numbers: Sequence[int | None],
) -> None:
    proj = positions @ normal
    steps = np.diff(proj)
    median = float(np.median(steps))
    if median < 1e-3 or steps.min() < 1e-3:  # multi-frame: frames share positions
        repeated = len(proj) - len(np.unique(np.round(proj, 3)))
        info.issues.append(
            qc.error(
                "duplicate_positions",
                f"{repeated} of {len(proj)} frame positions repeat (several stacks, echoes or "
                "segments in one file), not one volume",
            )
        )
        return
    gaps = np.flatnonzero(steps > GAP_FACTOR * median)
    if gaps.size:
        where = ", ".join(
            f"after slice at {proj[i]:.2f} mm (instance {numbers[i]}), "
            f"~{round(steps[i] / median) - 1} missing"
            for i in gaps[:3]
        )
        info.issues.append(
            qc.error("missing_slice", f"gap in the slice positions (step {median:.3g} mm): {where}")
        )
    elif np.abs(steps - median).max() > NONUNIFORM_TOLERANCE * median:
        info.issues.append(
            qc.warning(
                "nonuniform_spacing",
                f"slice spacing varies from {steps.min():.3g} to {steps.max():.3g} mm; "
                f"the volume is resampled to a uniform {float(steps.mean()):.4g} mm when read",
            )
        )
    direction = positions[-1] - positions[0]
    cos = abs(float(np.dot(direction, normal))) / max(float(np.linalg.norm(direction)), 1e-9)
    tilt = float(np.degrees(np.arccos(min(cos, 1.0))))
    if tilt > TILT_TOLERANCE_DEG:
        info.issues.append(
            qc.warning(
                "gantry_tilt",
                f"slices are stacked {tilt:.1f} degrees off the slice normal (gantry tilt); the "
                "affine carries the shear, so world coordinates stay exact",
            )
        )


def _set_geometry(
    info: SeriesInfo,
    positions: npt.NDArray[np.float64],
    iop: npt.NDArray[np.float64],
    pixel_spacing: Sequence[float],
    size_cr: tuple[int, int],
) -> None:
    normal = slice_normal(iop)
    proj = positions @ normal
    n = len(positions)  # non-uniform slices are resampled to the mean step, same count
    step = (positions[-1] - positions[0]) / (n - 1)
    info.affine_lps = dicom_affine_lps(iop, positions[0], pixel_spacing, step)
    info.shape = (size_cr[0], size_cr[1], n)
    info.positions_mm = proj


def _single_slice(info: SeriesInfo, header: DicomHeader, iop: npt.NDArray[np.float64]) -> None:
    """A series of one slice: a one-slice volume, as thick as SpacingBetweenSlices or
    SliceThickness say (1 mm without either)."""
    thickness = header.spacing_between_slices or header.slice_thickness or 1.0
    info.issues.append(
        qc.warning(
            "single_slice",
            f"one slice: read as a one-slice (2D) volume, {thickness:g} mm thick",
            header.path,
        )
    )
    normal = slice_normal(iop)
    position = np.asarray(header.position, dtype=np.float64)
    info.affine_lps = dicom_affine_lps(iop, position, header.pixel_spacing, normal * thickness)  # type: ignore[arg-type]
    info.shape = (header.columns, header.rows, 1)
    info.positions_mm = np.asarray([float(position @ normal)])


def _check_multiframe(info: SeriesInfo, header: DicomHeader) -> None:
    info.headers = [header]
    if header.orientation is None or header.pixel_spacing is None:
        message = _missing_geometry(
            [header], "the frames", ("ImageOrientationPatient", "PixelSpacing")
        )
        info.issues.append(qc.error("missing_geometry", message, header.path))
        return
    iop = np.asarray(header.orientation, dtype=np.float64)
    if not _orthonormal(iop):
        info.issues.append(
            qc.error("non_orthogonal", f"ImageOrientationPatient {tuple(iop)} is not orthonormal")
        )
        return
    normal = slice_normal(iop)
    if header.frame_positions is None or len(header.frame_positions) != header.n_frames:
        spacing = header.spacing_between_slices or header.slice_thickness
        if not spacing:
            kind = f"{sop_class_name(header.sop_class_uid)}, modality {header.modality or '?'}"
            info.issues.append(
                qc.error(
                    "missing_geometry",
                    f"multi-frame image ({kind}) has no per-frame ImagePositionPatient and no "
                    "SpacingBetweenSlices/SliceThickness: frames cannot be placed",
                    header.path,
                )
            )
            return
        info.issues.append(
            qc.warning(
                "no_frame_positions",
                f"no per-frame positions; frames placed {spacing} mm apart along the normal",
            )
        )
        positions = np.outer(np.arange(header.n_frames), normal * spacing)
        info.frame_order = list(range(header.n_frames))
    else:
        raw = np.asarray(header.frame_positions, dtype=np.float64)
        ascending = np.argsort(raw @ normal, kind="stable")
        _check_spacing(info, raw[ascending], normal, [int(i) + 1 for i in ascending])
        # keep the stored frame order when it is monotonic (e.g. superior to inferior B-scans)
        descending = np.array_equal(ascending[::-1], np.arange(len(ascending)))
        order = ascending[::-1] if descending else ascending
        info.frame_order = [int(i) for i in order]
        positions = raw[order]
    if not qc.has_errors(info.issues):
        _set_geometry(info, positions, iop, header.pixel_spacing, (header.columns, header.rows))
