"""DICOM discovery (headers only): every series under a folder tree, checked.

:func:`find_series` walks a folder tree, reads only headers (:mod:`medseg.io.dicom_header`),
groups files by Patient / Study / Series UID across folders and runs series QC
(:mod:`medseg.io.series_qc`: slice sorting, gaps, tilt, localizers, codecs...) on each group.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.io.dicom_header import (
    CorruptDicomError,
    DicomHeader,
    NotDicomError,
    read_header,
)
from medseg.io.series_qc import OPHTHALMIC_MODALITIES, SeriesInfo, check_series
from medseg.text import plural
from medseg.types import PathLike

__all__ = [
    "OPHTHALMIC_MODALITIES",
    "Discovery",
    "SeriesInfo",
    "check_series",
    "find_series",
    "iter_files",
    "scan_headers",
]

logger = logging.getLogger(__name__)

DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ".dic"}
NON_DICOM_SUFFIXES = {
    ".nii",
    ".gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".raw",
    ".png",
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".json",
    ".csv",
    ".txt",
    ".md",
    ".pdf",
    ".xml",
    ".html",
    ".yaml",
    ".yml",
    ".zip",
}


@dataclass
class Discovery:
    """Result of :func:`find_series` over a folder tree."""

    series: list[SeriesInfo]
    non_dicom: list[Path]
    unreadable: list[tuple[Path, str]]
    n_files: int

    @property
    def usable(self) -> list[SeriesInfo]:
        """Series that can be read as volumes."""
        return [s for s in self.series if s.usable]


def iter_files(roots: Sequence[PathLike]) -> Iterable[Path]:
    """Every regular file under the given files/folders, sorted, hidden files skipped."""
    for root in roots:
        path = Path(root)
        if path.is_file():
            yield path
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if not name.startswith("."):
                    yield Path(folder) / name


def _looks_like_dicom_name(path: Path) -> bool:
    suffix = path.suffix.lower()
    return (
        suffix in DICOM_SUFFIXES or (suffix == "" and path.name != "DICOMDIR") or suffix.isdigit()
    )


def scan_headers(
    roots: Sequence[PathLike],
) -> tuple[list[DicomHeader], list[Path], list[tuple[Path, str]], int]:
    """Read the headers of every DICOM file under ``roots``.

    Returns:
        (headers, non-DICOM files, unreadable files with reasons, number of files seen).
    """
    headers: list[DicomHeader] = []
    non_dicom: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    n = 0
    for path in iter_files(roots):
        n += 1
        if path.name.lower().endswith(tuple(NON_DICOM_SUFFIXES)) or path.name == "DICOMDIR":
            non_dicom.append(path)
            continue
        try:
            headers.append(read_header(path))
        except NotDicomError as err:
            if _looks_like_dicom_name(path) and path.suffix.lower() in DICOM_SUFFIXES:
                unreadable.append((path, f"not a valid DICOM file ({err})"))
            else:
                non_dicom.append(path)
        except CorruptDicomError as err:
            unreadable.append((path, str(err)))
    return headers, non_dicom, unreadable, n


def find_series(roots: PathLike | Sequence[PathLike]) -> Discovery:
    """Discover and check every DICOM series under ``roots`` (headers only).

    Args:
        roots: a folder or file, or several; folders are walked recursively.

    Returns:
        :class:`Discovery` with one :class:`SeriesInfo` per (patient, study, series) UID triple,
        ordered by patient, study date, series number; non-DICOM and unreadable files listed.
    """
    root_list = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    headers, non_dicom, unreadable, n = scan_headers(root_list)
    groups: dict[tuple[str, str, str], list[DicomHeader]] = defaultdict(list)
    for header in headers:
        groups[(header.patient_id, header.study_uid, header.series_uid)].append(header)
    series = [check_series(group) for group in groups.values()]
    series.sort(
        key=lambda s: (s.patient_id, s.study_date, s.study_uid, s.series_number or 0, s.series_uid)
    )
    logger.info(
        "found %d DICOM series (%d usable) in %s; %d non-DICOM, %d unreadable",
        len(series),
        sum(s.usable for s in series),
        plural(n, "file"),
        len(non_dicom),
        len(unreadable),
    )
    return Discovery(series, non_dicom, unreadable, n)
