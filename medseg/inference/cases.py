"""What to predict: cases from image files, scan folders (DICOM discovery) or a manifest."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import ConfigError
from medseg.io.read import DicomSeriesRef
from medseg.manifest import naming
from medseg.manifest.build import Candidate, discover_candidates
from medseg.manifest.pseudonym import pseudonym, pseudonymous_case_id
from medseg.manifest.schema import load_manifest
from medseg.types import PathLike


@dataclass
class CaseInput:
    """One case to segment; ``error`` is set for inputs found unusable before prediction."""

    case_id: str
    source: str | Path | DicomSeriesRef | None
    root: Path | None = None
    patient_id: str | None = None
    study_date: str | None = None
    laterality: str | None = None
    modality: str | None = None
    error: str | None = None

    @property
    def source_text(self) -> str | dict[str, object]:
        """JSON-friendly description of the source for run reports."""
        if isinstance(self.source, DicomSeriesRef):
            files = [
                str(self.root / f) if self.root and not Path(f).is_absolute() else f
                for f in self.source.files
            ]
            return {"series_uid": self.source.series_uid, "files": files}
        if self.source is None:
            return ""
        path = Path(self.source)
        return str(self.root / path if self.root is not None and not path.is_absolute() else path)


def _from_candidate(c: Candidate) -> CaseInput:
    return CaseInput(
        c.case_id, c.source, None, c.patient_id, c.study_date, c.laterality, c.modality
    )


def _from_manifest(path: Path, split: str | None) -> list[CaseInput]:
    manifest = load_manifest(path)
    if len(manifest.channels) > 1:
        raise ConfigError(
            f"manifest {path.name} has {len(manifest.channels)} channels; predict reads one"
        )
    return [
        CaseInput(
            c.case_id,
            c.images[manifest.channels[0]],
            manifest.root,
            c.patient_id,
            c.study_date,
            c.laterality,
            c.modality,
        )
        for c in manifest.cases
        if split is None or c.split == split
    ]


def _from_folder(folder: Path) -> list[CaseInput]:
    candidates, summary = discover_candidates(folder)
    cases = [_from_candidate(c) for c in candidates]
    for item in summary.skipped:  # unusable series and unreadable DICOM are failed cases
        if item.reason.startswith(("unusable DICOM series", "unreadable DICOM")):
            cases.append(
                CaseInput(
                    _failed_id(folder, Path(item.path)),
                    item.path,
                    None,
                    error=f"{item.reason} [{item.path}]",
                )
            )
    return cases


def _failed_id(folder: Path, path: Path) -> str:
    """An id for an input that could not be read: its path under the input folder."""
    relative = path.relative_to(folder) if path.is_relative_to(folder) else Path(path.name)
    parts = [
        *relative.parts[:-1],
        relative.name.rsplit(".", 1)[0]
        if relative.suffix.lower() in {".dcm", ".dicom", ".ima"}
        else relative.name,
    ]
    return naming.sanitize("-".join(parts))


def _is_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        return "cases" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _pseudonymize(case: CaseInput, key: str, table: list[tuple[str, str, str, str]]) -> None:
    if case.patient_id is None:
        return
    new_patient = pseudonym(case.patient_id, key)
    new_case = pseudonymous_case_id(case.case_id, case.patient_id, new_patient)
    table.append((case.patient_id, new_patient, case.case_id, new_case))
    case.patient_id, case.case_id = new_patient, new_case


def cases_from_inputs(
    inputs: Sequence[PathLike],
    *,
    split: str | None = None,
    pseudonym_key: str | None = None,
    table: list[tuple[str, str, str, str]] | None = None,
) -> list[CaseInput]:
    """Turn CLI inputs into cases with unique ids (duplicates get ``-2``, ``-3``...).

    With ``pseudonym_key``, cases found in folders and files (not manifests, which carry their own
    ids) get pseudonymous patient and case ids; the mapping rows are appended to ``table``.
    """
    cases: list[CaseInput] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found_cases = _from_folder(path)
        elif _is_manifest(path):
            cases += _from_manifest(path, split)
            continue
        else:
            found, summary = discover_candidates(path)
            found_cases = [_from_candidate(c) for c in found]
            if not found:
                reason = summary.skipped[0].reason if summary.skipped else "not a supported scan"
                found_cases.append(
                    CaseInput(
                        naming.sanitize(naming.strip_extension(path.name)), path, error=reason
                    )
                )
        if pseudonym_key is not None:
            for case in found_cases:
                _pseudonymize(case, pseudonym_key, table if table is not None else [])
        cases += found_cases
    seen: Counter[str] = Counter()
    for case in cases:
        seen[case.case_id] += 1
        if seen[case.case_id] > 1:
            case.case_id = f"{case.case_id}-{seen[case.case_id]}"
    return cases
