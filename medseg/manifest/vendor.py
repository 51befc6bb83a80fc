"""Vendor OCT exports in scan folders, and per-B-scan mask folders as their labels.

Discovery finds HEYEX ``.vol`` files and HEYEX XML export folders (the XML file and the TIFF
images it names are one scan) beside DICOM and NIfTI, reading headers only. Case ids follow the
DICOM rule, ``<PatientID>[_<OD|OS>][_<StudyDate>]``, so a patient's eyes and visits group the same
way whatever the format (the date only for patients with several visits; scans that still
share an id get their file or folder name appended). Scans medseg cannot use as a 3D case are
listed as skipped with the reason: circle scans, radial (or unevenly spaced) scans, vendor
formats it does not read.

Labels of vendor scans: a NIfTI/NRRD on the volume's grid in ``--labels DIR`` (matched like any
other label), or a folder there, named like the case, holding one mask image per B-scan (PNG or
TIFF, ``depth x width`` pixels, in B-scan order by the numbers in their names). A mask folder is
converted once into ``<manifest stem>_labels/<case_id>.nii.gz`` beside the manifest, on the
volume's grid, and the manifest points at that file.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from medseg.errors import DataError, MissingDependencyError
from medseg.io.heyex import HeyexHeader, is_heyex_xml, read_heyex_header
from medseg.io.images import SIDECAR_NAME
from medseg.io.nifti import write_nifti
from medseg.io.oct_vendor import UNSUPPORTED, read_vendor_volume, vendor_format
from medseg.manifest import naming
from medseg.manifest.schema import SkippedItem

if TYPE_CHECKING:
    from medseg.manifest.build import Candidate

logger = logging.getLogger(__name__)
MASK_SUFFIXES = (".png", ".tif", ".tiff")
_NOT_A_CASE = {
    "circle": "circle scan: lies on no plane, medseg cannot place it",
    "radial": "radial scan: non-parallel B-scans form no 3D volume",
    "separate B-scans": "B-scans not parallel or not evenly spaced: they form no 3D volume",
}


def split_vendor_files(
    files: Sequence[Path], skipped: list[SkippedItem]
) -> tuple[list[Path], list[Path]]:
    """``(vendor sources, other files)``: VOL files and XML export folders, the rest.

    Files of an XML export folder are consumed by it; files of vendor formats medseg does not
    read are added to ``skipped`` with the reason.
    """
    xml_folders = sorted({p.parent for p in files if is_heyex_xml(p)})
    folder_set = set(xml_folders)
    sources: list[Path] = list(xml_folders)
    rest = []
    for path in files:
        if path.parent in folder_set:
            continue
        fmt = vendor_format(path)
        if fmt == "heyex_vol":
            sources.append(path)
        elif fmt in UNSUPPORTED.values():
            reason = f"{fmt}: vendor format not read (no public sample to verify its geometry)"
            skipped.append(SkippedItem(path=str(path), reason=reason))
        else:
            rest.append(path)
    return sources, rest


def _patient(header: HeyexHeader, stem: str, pattern: re.Pattern[str] | None) -> str:
    if header.patient_id and header.patient_id.lower() != "unknown":
        return naming.sanitize(header.patient_id)
    if pattern is not None and (match := pattern.match(stem)):
        return naming.sanitize(match.group("patient"))
    return naming.sanitize(stem)


def _headers(sources: Sequence[Path], skipped: list[SkippedItem]) -> list[tuple[Path, HeyexHeader]]:
    found = []
    for path in sources:
        try:
            header = read_heyex_header(path)
        except MissingDependencyError as err:
            skipped.append(SkippedItem(path=str(path), reason=f"HEYEX export: {err.describe()}"))
            continue
        except DataError as err:
            skipped.append(SkippedItem(path=str(path), reason=err.message))
            continue
        if header.pattern in _NOT_A_CASE:
            skipped.append(SkippedItem(path=str(path), reason=_NOT_A_CASE[header.pattern]))
            continue
        found.append((path, header))
    return found


def _case_ids(found: Sequence[tuple[Path, HeyexHeader]], patients: Sequence[str]) -> list[str]:
    """``<patient>[_<eye>][_<date>]`` (date only for patients with several visits); scans that
    still share an id get their file/folder name appended."""
    visits: dict[str, set[str | None]] = {}
    for (_, header), pid in zip(found, patients):
        visits.setdefault(pid, set()).add(header.study_date)
    base = []
    for (_, header), pid in zip(found, patients):
        parts = [pid, header.laterality or ""]
        if len(visits[pid]) > 1:
            parts.append(header.study_date or "nodate")
        base.append("_".join(p for p in parts if p))
    counts = Counter(base)
    return [
        f"{b}_{naming.sanitize(path.stem)}" if counts[b] > 1 else b
        for b, (path, _) in zip(base, found)
    ]


def vendor_candidates(
    sources: Sequence[Path],
    pattern: re.Pattern[str] | None,
    skipped: list[SkippedItem],
    taken: set[str],
) -> list[Candidate]:
    """One :class:`Candidate` per usable export, ids unique against ``taken`` (which grows)."""
    from medseg.manifest.build import Candidate

    found = _headers(sources, skipped)
    patients = [_patient(h, p.stem, pattern) for p, h in found]
    out = []
    for (path, header), pid, case_id in zip(found, patients, _case_ids(found, patients)):
        unique, n = case_id, 1
        while unique in taken:
            n += 1
            unique = f"{case_id}-{n}"
        taken.add(unique)
        out.append(
            Candidate(
                case_id=unique,
                patient_id=pid,
                source=path,
                stem=path.stem,
                study_date=header.study_date,
                laterality=header.laterality,
                modality="OPT",
            )
        )
    return out


def mask_folders(labels_dir: Path) -> dict[str, Path]:
    """Folders under ``labels_dir`` of 2D mask images (no ``spacing.json``), by label key."""
    found: dict[str, Path] = {}
    for folder in sorted(p for p in labels_dir.rglob("*") if p.is_dir()):
        images = [p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES]
        if images and not (folder / SIDECAR_NAME).exists():
            found.setdefault(naming.label_key(folder), folder)
    return found


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _read_mask(path: Path) -> npt.NDArray[np.uint8]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            mask = np.asarray(img)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read mask image: {err}", path=path) from err
    return np.asarray(mask[..., 0] if mask.ndim == 3 else mask)


def masks_to_volume_grid(folder: Path, image: Path, out_path: Path) -> Path:
    """Stack one mask per B-scan onto the vendor volume's grid and write it as NIfTI.

    Masks are ``(depth, width)`` images in B-scan order (natural sort of their names). A mask of
    only 0 and 255 counts as binary (255 -> 1).

    Raises:
        DataError: wrong number of masks, a size other than the B-scans', non-integer values.
    """
    volume = read_vendor_volume(image)
    width, depth, n = volume.shape
    images = (p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES)
    files = sorted(images, key=_natural_key)
    if len(files) != n:
        raise DataError(f"{len(files)} mask images for {n} B-scans", path=folder)
    masks = [_read_mask(p) for p in files]
    for path, mask in zip(files, masks):
        if mask.shape != (depth, width):
            raise DataError(
                f"mask is {mask.shape[1]} x {mask.shape[0]} px; the B-scans are {width} x {depth}",
                path=path,
            )
    labels = np.stack([m.T for m in masks], axis=2)
    if set(np.unique(labels).tolist()) <= {0, 255}:
        labels = (labels > 0).astype(np.uint8)
    return write_nifti(volume.with_array(labels.astype(np.uint8)), out_path)


def vendor_mask_labels(
    candidates: Sequence[Candidate],
    labels_dir: Path,
    matched: dict[str, Path],
    out_dir: Path,
    skipped: list[SkippedItem],
) -> dict[str, Path]:
    """Labels from mask folders for vendor cases without one (converted into ``out_dir``)."""
    folders = mask_folders(labels_dir)
    vendor = [c for c in candidates if isinstance(c.source, Path) and vendor_format(c.source)]
    per_patient = Counter(c.patient_id for c in vendor)
    found: dict[str, Path] = {}
    for c in vendor:
        keys = [c.case_id, c.stem] + ([c.patient_id] if per_patient[c.patient_id] == 1 else [])
        folder = next((folders[k] for k in keys if k in folders), None)
        if c.case_id in matched or folder is None or not isinstance(c.source, Path):
            continue
        try:
            target = out_dir / f"{c.case_id}.nii.gz"
            found[c.case_id] = masks_to_volume_grid(folder, c.source, target)
        except DataError as err:
            skipped.append(SkippedItem(path=str(folder), reason=f"mask folder: {err.message}"))
    return found
