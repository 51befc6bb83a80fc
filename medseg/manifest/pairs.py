"""Explicit image/label pairing from a CSV (``medseg manifest build --pairs``).

Columns: ``image,label`` (required; paths relative to the scan folder or absolute; ``label`` may
be empty), and optionally ``case_id``, ``patient_id``, ``study_date``, ``laterality``. An image
may be a file (NIfTI, NRRD/MHA, multi-frame DICOM), a folder with one DICOM series, or a PNG/TIFF
stack folder. A row whose image cannot be used is skipped with the reason; the others go on.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.errors import ConfigError, DataError
from medseg.io.dicom import find_series
from medseg.io.images import is_image_stack
from medseg.io.read import DicomSeriesRef
from medseg.manifest import naming
from medseg.manifest.schema import SkippedItem

if TYPE_CHECKING:
    from medseg.manifest.build import Candidate

REQUIRED = ("image", "label")
OPTIONAL = ("case_id", "patient_id", "study_date", "laterality")


def _source(image: Path) -> tuple[Path | DicomSeriesRef, str | None, str | None, str | None]:
    """(source, patient, date, laterality) for one CSV image entry."""
    if not image.exists():
        raise DataError("image does not exist", path=image)
    if image.is_dir() and not is_image_stack(image):
        usable = find_series(image).usable
        if len(usable) != 1:
            raise DataError(
                f"expected one usable DICOM series in the folder, found {len(usable)}", path=image
            )
        s = usable[0]
        source: Path | DicomSeriesRef = (
            s.files[0]
            if s.headers[0].is_multiframe
            else DicomSeriesRef(series_uid=s.series_uid, files=[str(p) for p in s.files])
        )
        lat = s.laterality if s.laterality in ("OD", "OS") else None
        return source, s.patient_id or None, s.study_date or None, lat
    return image, None, None, None


def read_pairs(
    csv_path: Path, root: Path, skipped: list[SkippedItem]
) -> tuple[list[Candidate], dict[str, Path]]:
    """Candidates and their labels from a pairs CSV (paths resolved against ``root``)."""
    from medseg.manifest.build import Candidate

    try:
        with csv_path.open(newline="", encoding="utf-8") as fp:
            reader = csv.DictReader(fp)
            rows = list(reader)
            columns = reader.fieldnames or []
    except OSError as err:
        raise ConfigError(f"cannot read pairs CSV: {err.strerror or err}", path=csv_path) from err
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        raise ConfigError(
            f"pairs CSV columns: missing {missing}, unknown {unknown}; expected image,label and "
            f"optionally {','.join(OPTIONAL)}",
            path=csv_path,
        )
    candidates: list[Candidate] = []
    labels: dict[str, Path] = {}
    for number, row in enumerate(rows, start=2):
        image = root / row["image"]
        try:
            source, patient, date, lat = _source(image)
        except DataError as err:
            skipped.append(
                SkippedItem(path=str(image), reason=f"pairs CSV line {number}: {err.message}")
            )
            continue
        case_id = naming.sanitize(row.get("case_id") or naming.strip_extension(image.name))
        candidates.append(
            Candidate(
                case_id=case_id,
                patient_id=naming.sanitize(row.get("patient_id") or patient or case_id),
                source=source,
                stem=naming.strip_extension(image.name),
                study_date=row.get("study_date") or date,
                laterality=(row.get("laterality") or lat)
                if (row.get("laterality") or lat) in ("OD", "OS")
                else None,
            )
        )
        if row.get("label"):
            label = root / row["label"]
            if label.exists():
                labels[case_id] = label
            else:
                skipped.append(
                    SkippedItem(
                        path=str(label), reason=f"pairs CSV line {number}: label does not exist"
                    )
                )
    return candidates, labels
