"""Personal data (PatientName, PatientBirthDate) from source DICOM headers, only on request.

Reports identify patients by the pseudonymous ids of the run report or manifest. Names and birth
dates are read here, and only here, when the user passes ``--include-phi``; they are never logged.
"""

from __future__ import annotations

from pathlib import Path

from medseg.io.image_files import ImageFileRef
from medseg.io.read import DicomSeriesRef
from medseg.reports.schema import PersonalData

_TAGS = ["PatientName", "PatientBirthDate"]
_MAX_FILES_TRIED = 20


def _read_tags(path: Path) -> PersonalData | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    name, birth = ds.get("PatientName"), ds.get("PatientBirthDate")
    if name is None and birth is None:
        return None
    return PersonalData(patient_name=str(name) if name else None, birth_date=str(birth) or None)


def _candidate_files(source: str | DicomSeriesRef, root: Path | None) -> list[Path]:
    if isinstance(source, DicomSeriesRef):
        first = Path(source.files[0])
        return [first if root is None or first.is_absolute() else root / first]
    path = Path(source)
    if root is not None and not path.is_absolute():
        path = root / path
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())[:_MAX_FILES_TRIED]
    return []


def read_personal_data(
    source: str | DicomSeriesRef | ImageFileRef | None, *, root: Path | None = None
) -> PersonalData | None:
    """Patient name and birth date from the first DICOM file of an image source.

    Args:
        source: image path (DICOM file or folder) or series reference; NIfTI and image stacks
            carry no personal data and give ``None``.
        root: folder that relative paths are resolved against.

    Returns:
        :class:`PersonalData`, or ``None`` when the source is not DICOM or has neither tag.
    """
    if source is None or isinstance(source, ImageFileRef):  # 2D images carry no personal data
        return None
    for path in _candidate_files(source, root):
        found = _read_tags(path)
        if found is not None:
            return found
    return None
