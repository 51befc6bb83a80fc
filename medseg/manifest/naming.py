"""Case ids and label pairing rules.

Case ids (documented in the README):

* DICOM series: ``<PatientID>[_<OD|OS>][_<StudyDate>][_S<SeriesNumber>]`` — the eye for
  ophthalmic series; the study date only when the patient has several studies; the series number
  only when that is still ambiguous (several usable series in one study).
* NIfTI / NRRD / MHA files and 2D images (PNG, JPEG, TIFF, BMP): the file name without
  extension; PNG/TIFF stacks: the folder name.

Characters outside ``[A-Za-z0-9._-]`` become ``-``.

Labels in ``--labels DIR`` are matched by file stem (extensions ``.nii.gz``, ``.nii``, ``.nrrd``,
``.mha``, ``.png``, ``.tif``, ``.tiff``, ``.bmp``, ``.gif``, ``.jpg``, ``.jpeg``; an optional
``_label``, ``_seg`` or ``_mask`` suffix is ignored), in this order: the case id; the image file's
stem; the PatientID when the patient has exactly one case; the SeriesInstanceUID.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LABEL_SUFFIXES = (
    *(".nii.gz", ".nii", ".nrrd", ".mha"),
    *(".png", ".tif", ".tiff", ".bmp", ".gif", ".jpg", ".jpeg"),
)
_LABEL_TAILS = ("_label", "_labels", "_seg", "_mask")
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize(text: str) -> str:
    """A safe id: characters outside ``[A-Za-z0-9._-]`` replaced by ``-``."""
    return _BAD.sub("-", text.strip()).strip("-") or "UNKNOWN"


def strip_extension(name: str) -> str:
    """File name without a known image/label extension."""
    lower = name.lower()
    for suffix in (*LABEL_SUFFIXES, ".nhdr", ".mhd"):
        if lower.endswith(suffix):
            return name[: len(name) - len(suffix)]
    return name


def label_key(path: Path) -> str:
    """Stem used to match a label file (``_label``/``_seg``/``_mask`` suffixes ignored)."""
    stem = strip_extension(path.name)
    for tail in _LABEL_TAILS:
        if stem.lower().endswith(tail):
            return stem[: len(stem) - len(tail)]
    return stem


@dataclass(frozen=True)
class SeriesKey:
    """What a DICOM case id is built from."""

    patient_id: str
    laterality: str | None
    study_date: str
    study_uid: str
    series_number: int | None


def dicom_case_ids(keys: Sequence[SeriesKey]) -> list[str]:
    """Case ids for DICOM series following the module rules (unique within ``keys``)."""
    studies: dict[str, set[str]] = {}
    for k in keys:
        studies.setdefault(k.patient_id, set()).add(k.study_uid)
    base = []
    for k in keys:
        parts = [sanitize(k.patient_id)]
        if k.laterality in ("OD", "OS"):
            parts.append(k.laterality)
        if len(studies[k.patient_id]) > 1:
            parts.append(sanitize(k.study_date or k.study_uid[-8:]))
        base.append("_".join(parts))
    counts = Counter(base)
    ids = [
        f"{b}_S{k.series_number if k.series_number is not None else i}" if counts[b] > 1 else b
        for i, (b, k) in enumerate(zip(base, keys))
    ]
    seen: Counter[str] = Counter()
    unique = []
    for case_id in ids:  # last resort for identical series numbers
        seen[case_id] += 1
        unique.append(case_id if seen[case_id] == 1 else f"{case_id}-{seen[case_id]}")
    return unique
