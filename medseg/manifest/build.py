"""``build_manifest``: a clinical scan folder -> a manifest (cases, labels, folds, issues).

Discovery: DICOM series (headers only, with series QC), NIfTI, NRRD/MHA files, PNG/TIFF stacks
(folders with ``spacing.json``), single 2D images (PNG, JPEG, TIFF, BMP, GIF; channels and
spacing decided by :mod:`medseg.manifest.image_cases`) and vendor OCT exports (HEYEX VOL files and
XML folders, see :mod:`medseg.manifest.vendor`; their per-B-scan mask folders in ``--labels``
become NIfTI labels). NIfTI files and 2D images may carry a BIDS-style JSON sidecar
(``<name>.json`` with ``patient_id``, ``study_date``, ``laterality``, ``modality``; 2D images also
``pixel_spacing_mm``). Label values are mapped by :mod:`medseg.manifest.label_values`. Labels come
from ``--labels DIR`` (matched by the rules in :mod:`medseg.manifest.naming`, label names from an
optional ``labels.json`` there) or from an explicit pairs CSV. Nothing is fatal per file: unusable
series, unreadable and non-scan files are listed in ``skipped`` with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import ConfigError, DataError
from medseg.io import qc
from medseg.io.dicom import SeriesInfo, find_series, iter_files
from medseg.io.image_files import IMAGE_FILE_SUFFIXES, ImageFileRef, is_image_file
from medseg.io.images import SIDECAR_NAME, load_sidecar
from medseg.io.nifti import is_nifti
from medseg.io.oct_vendor import vendor_format
from medseg.io.qc import Issue
from medseg.io.read import DicomSeriesRef
from medseg.io.sitk_io import is_sitk_file
from medseg.manifest import naming, vendor
from medseg.manifest.image_cases import ImageCases, decide_image_cases
from medseg.manifest.label_values import decide_label_mapping
from medseg.manifest.pairs import read_pairs
from medseg.manifest.pseudonym import pseudonym, pseudonymous_case_id
from medseg.manifest.schema import Case, Manifest, SkippedItem
from medseg.manifest.splits import assign_splits
from medseg.text import plural
from medseg.types import PathLike

logger = logging.getLogger(__name__)
LABELS_JSON = "labels.json"


@dataclass
class Candidate:
    """An image source found in the scan folder, before labels and folds (absolute paths)."""

    case_id: str
    patient_id: str
    source: Path | DicomSeriesRef
    stem: str
    study_date: str | None = None
    laterality: str | None = None
    modality: str | None = None
    series_uid: str | None = None
    issues: list[Issue] = field(default_factory=list)


@dataclass
class BuildSummary:
    """Counts for the build table."""

    patients: int = 0
    studies: int = 0
    dicom_series: int = 0
    cases: int = 0
    labelled: int = 0
    files_seen: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)

    def count(self, cases: Sequence[Case]) -> None:
        """Fill the patient, study, case and labelled counts from the final cases."""
        self.patients = len({c.patient_id for c in cases})
        self.studies = len({(c.patient_id, c.study_date) for c in cases})
        self.cases, self.labelled = len(cases), sum(1 for c in cases if c.label)

    @property
    def skipped_reasons(self) -> Counter[str]:
        """How many items were skipped for each reason kind (text before the first colon)."""
        return Counter(s.reason.split(":")[0] for s in self.skipped)


@dataclass
class BuildResult:
    manifest: Manifest
    summary: BuildSummary
    pseudonyms: list[tuple[str, str, str, str]] = field(default_factory=list)


def pseudonymize_cases(
    cases: Sequence[Case], key: str
) -> tuple[list[Case], list[tuple[str, str, str, str]]]:
    """Cases with pseudonymous patient and case ids, plus the mapping table rows."""
    out, table = [], []
    for case in cases:
        new_patient = pseudonym(case.patient_id, key)
        new_case = pseudonymous_case_id(case.case_id, case.patient_id, new_patient)
        table.append((case.patient_id, new_patient, case.case_id, new_case))
        out.append(case.model_copy(update={"patient_id": new_patient, "case_id": new_case}))
    return out, table


def _series_candidates(series: Sequence[SeriesInfo]) -> list[Candidate]:
    keys = [
        naming.SeriesKey(
            s.patient_id, s.laterality or None, s.study_date, s.study_uid, s.series_number
        )
        for s in series
    ]
    out = []
    for case_id, s in zip(naming.dicom_case_ids(keys), series):
        files = [str(p) for p in s.files]
        multiframe = len(files) == 1 and s.headers[0].is_multiframe
        source: Path | DicomSeriesRef = (
            Path(files[0]) if multiframe else DicomSeriesRef(series_uid=s.series_uid, files=files)
        )
        out.append(
            Candidate(
                case_id=case_id,
                patient_id=naming.sanitize(s.patient_id or "UNKNOWN"),
                source=source,
                stem=naming.strip_extension(Path(files[0]).name) if multiframe else case_id,
                study_date=s.study_date or None,
                laterality=s.laterality if s.laterality in ("OD", "OS") else None,
                modality=s.modality or None,
                series_uid=s.series_uid,
                issues=[i for i in s.issues if i.severity != "error"],
            )
        )
    return out


def _sidecar_meta(path: Path) -> dict[str, str]:
    sidecar = path.with_name(naming.strip_extension(path.name) + ".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        k: str(v)
        for k, v in data.items()
        if k in {"patient_id", "study_date", "laterality", "modality"}
    }


def _patient_from(case_id: str, meta: dict[str, str], pattern: re.Pattern[str] | None) -> str:
    if "patient_id" in meta:
        return naming.sanitize(meta["patient_id"])
    if pattern is not None and (match := pattern.match(case_id)):
        return naming.sanitize(match.group("patient"))
    return case_id


def _file_candidate(path: Path, pattern: re.Pattern[str] | None) -> Candidate:
    case_id = naming.sanitize(naming.strip_extension(path.name))
    meta = _sidecar_meta(path)
    lat = meta.get("laterality")
    return Candidate(
        case_id=case_id,
        patient_id=_patient_from(case_id, meta, pattern),
        source=path,
        stem=naming.strip_extension(path.name),
        study_date=meta.get("study_date"),
        laterality=lat if lat in ("OD", "OS") else None,
        modality=meta.get("modality"),
    )


def _stack_candidate(folder: Path, pattern: re.Pattern[str] | None) -> Candidate:
    sidecar = load_sidecar(folder)
    case_id = naming.sanitize(folder.name)
    meta = {"patient_id": sidecar.patient_id} if sidecar.patient_id else {}
    return Candidate(
        case_id=case_id,
        patient_id=_patient_from(case_id, meta, pattern),
        source=folder,
        stem=folder.name,
        study_date=sidecar.study_date,
        laterality=sidecar.laterality,
        modality=sidecar.modality,
    )


def _other_candidates(
    files: Sequence[Path], pattern: re.Pattern[str] | None, skipped: list[SkippedItem]
) -> list[Candidate]:
    stacks = sorted({p.parent for p in files if p.name == SIDECAR_NAME})
    out = [_stack_candidate(folder, pattern) for folder in stacks]
    stack_set = set(stacks)
    for path in files:
        if path.parent in stack_set:
            continue
        name = path.name.lower()
        scan = is_nifti(path) or (is_sitk_file(path) and not name.endswith(".nhdr"))
        if scan or is_image_file(path):
            out.append(_file_candidate(path, pattern))
        elif name.endswith((".raw", ".zraw")) or (name.endswith(".json") and _is_sidecar(path)):
            continue
        else:
            skipped.append(SkippedItem(path=str(path), reason=f"not a scan: {_not_a_scan(path)}"))
    return out


def _not_a_scan(path: Path) -> str:
    """Why a file that is neither DICOM nor a supported image format was skipped."""
    if path.name.upper() == "DICOMDIR":
        return "DICOMDIR media index (its series are read from their own files)"
    suffix = "".join(path.suffixes[-2:]) or "no suffix"
    return f"neither DICOM nor a supported image format ({suffix})"


def _is_sidecar(path: Path) -> bool:
    stem = path.name[: -len(".json")]
    suffixes = (".nii.gz", ".nii", *IMAGE_FILE_SUFFIXES)
    return any((path.parent / f"{stem}{ext}").exists() for ext in suffixes)


def _under(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _label_files(labels_dir: Path, exclude: set[Path]) -> dict[str, Path]:
    """Label files by label key (files in the ``exclude`` folders left out)."""
    found: dict[str, Path] = {}
    for path in sorted(iter_files([labels_dir])):
        if path.name.lower().endswith(naming.LABEL_SUFFIXES) and path.parent not in exclude:
            found.setdefault(naming.label_key(path), path)
    return found


def _match_labels(
    candidates: Sequence[Candidate], labels_dir: Path, skipped: list[SkippedItem]
) -> dict[str, Path]:
    has_vendor = any(isinstance(c.source, Path) and vendor_format(c.source) for c in candidates)
    mask_folders = set(vendor.mask_folders(labels_dir).values()) if has_vendor else set()
    available = _label_files(labels_dir, mask_folders)  # per-B-scan masks: vendor_mask_labels
    per_patient = Counter(c.patient_id for c in candidates)
    matched: dict[str, Path] = {}
    used: set[Path] = set()
    for c in candidates:
        keys = [c.case_id, c.stem]
        if per_patient[c.patient_id] == 1:
            keys.append(c.patient_id)
        if c.series_uid:
            keys.append(c.series_uid)
        for key in keys:
            if key in available:
                matched[c.case_id] = available[key]
                used.add(available[key])
                break
    for path in sorted(set(available.values()) - used):
        skipped.append(SkippedItem(path=str(path), reason="label without a matching image"))
    return matched


def read_labels_json(labels_dir: Path) -> tuple[dict[str, str], list[int]] | None:
    """Class names and lesion labels from ``labels.json`` in a label folder (None: no file).

    The file is ``{"labels": {"0": "background", "1": "IRF", ...}, "lesion_labels": [1, 2]}``
    (``medseg synth`` writes it; ``manifest build`` and ``evaluate --ref FOLDER`` read it).

    Raises:
        ConfigError: the file exists but is not of that form.
    """
    spec = Path(labels_dir) / LABELS_JSON
    if not spec.is_file():
        return None
    try:
        data = json.loads(spec.read_text(encoding="utf-8"))
        names = {str(k): str(v) for k, v in data["labels"].items()}
        lesions = [int(v) for v in data.get("lesion_labels", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"invalid {LABELS_JSON}: expected {{'labels': {{'0': 'background', ...}}}} ({err})",
            path=spec,
        ) from err
    return names, lesions


def _label_names(
    labels_dir: Path | None, label_names: dict[int, str] | None, lesion_labels: Sequence[int] | None
) -> tuple[dict[str, str], list[int]]:
    names: dict[str, str] = {"0": "background"}
    lesions: list[int] = []
    found = read_labels_json(labels_dir) if labels_dir else None
    if found is not None:
        names, lesions = found
    if label_names:
        names = {"0": "background", **{str(k): v for k, v in label_names.items()}}
    if lesion_labels is not None:
        lesions = list(lesion_labels)
    return names, lesions


def _label_file_values(paths: Iterable[Path]) -> set[int]:
    """Distinct values of the label maps (unreadable ones skipped: ``manifest check`` says why)."""
    import numpy as np

    from medseg.io.read import read_volume

    values: set[int] = set()
    for path in paths:
        try:
            values |= {int(v) for v in np.unique(read_volume(path).array)}
        except (DataError, ValueError):
            continue
    return values


def _label_spec(
    labels_dir: Path | None,
    labels: dict[str, Path],
    label_names: dict[int, str] | None,
    lesion_labels: Sequence[int] | None,
) -> tuple[dict[str, str], list[int], dict[str, int]]:
    """Label names, lesion labels and the file-value mapping of the data set.

    The label files are read when no names are declared (names ``label_<v>`` from the values) or
    when they are 2D images (values such as 0/255 to map, :mod:`medseg.manifest.label_values`).
    """
    names, lesions = _label_names(labels_dir, label_names, lesion_labels)
    images = [p for p in labels.values() if is_image_file(p)]
    if not labels or (len(names) > 1 and not images):
        return names, lesions, {}
    values = _label_file_values(labels.values())
    declared = [int(k) for k in names if k != "0"] or None
    lossy = bool(images) and all(p.suffix.lower() in (".jpg", ".jpeg") for p in images)
    mapping = decide_label_mapping(values, declared, lossy=lossy)
    if len(names) == 1:
        kept = {mapping.get(v, v) for v in values} - {0}
        names = {"0": "background", **{str(v): f"label_{v}" for v in sorted(kept)}}
    if mapping:
        logger.info("label values mapped: %s", ", ".join(f"{k} -> {v}" for k, v in mapping.items()))
    return names, lesions, {str(k): v for k, v in mapping.items()}


def _relative(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _relative_skip(item: SkippedItem, root: Path) -> SkippedItem:
    path = Path(item.path)
    return SkippedItem(
        path=_relative(path, root) if _under(path, root) else item.path, reason=item.reason
    )


def _to_case(c: Candidate, label: Path | None, root: Path, images2d: ImageCases) -> Case:
    source = c.source
    images: dict[str, str | DicomSeriesRef | ImageFileRef]
    if isinstance(source, DicomSeriesRef):
        files = [_relative(Path(f), root) for f in source.files]
        images = {"image": DicomSeriesRef(series_uid=source.series_uid, files=files)}
    elif isinstance(source, Path) and source in images2d.facts:
        images = dict(images2d.sources(source, root))
    else:
        images = {"image": _relative(source, root)}
    issues = list(c.issues)
    if isinstance(source, Path):
        issues += images2d.issues(source)
    if label is None:
        issues.append(
            qc.info("no_label", "no label map found; the case is used for inference only")
        )
    return Case(
        case_id=c.case_id,
        patient_id=c.patient_id,
        study_date=c.study_date,
        laterality=c.laterality,  # type: ignore[arg-type]
        modality=c.modality,
        images=images,
        label=None if label is None else _relative(label, root),
        issues=issues,
    )


def _skip_series(series: Sequence[SeriesInfo], skipped: list[SkippedItem]) -> None:
    for s in series:
        errors = [i for i in s.issues if i.severity == "error"]
        where = str(s.source_files[0].parent)
        text = "; ".join(f"{i.code}: {i.message}" for i in errors)
        skipped.append(
            SkippedItem(path=where, reason=f"unusable DICOM series {s.series_number}: {text}")
        )


def discover_candidates(
    scan_dir: Path,
    *,
    labels_dir: Path | None = None,
    pattern: re.Pattern[str] | None = None,
    summary: BuildSummary | None = None,
) -> tuple[list[Candidate], BuildSummary]:
    """Every usable scan under ``scan_dir`` (absolute sources) and a summary with skipped items.

    Used by ``manifest build`` and by ``predict`` for folder inputs.
    """
    summary = summary if summary is not None else BuildSummary()
    discovery = find_series(scan_dir)
    summary.files_seen = discovery.n_files
    series = [s for s in discovery.series if not any(_under(h.path, labels_dir) for h in s.headers)]
    summary.dicom_series = len(series)
    _skip_series([s for s in series if not s.usable], summary.skipped)
    for path, reason in discovery.unreadable:
        summary.skipped.append(SkippedItem(path=str(path), reason=f"unreadable DICOM: {reason}"))
    others = [p for p in discovery.non_dicom if not _under(p, labels_dir)]
    candidates = _series_candidates([s for s in series if s.usable])
    vendor_sources, others = vendor.split_vendor_files(others, summary.skipped)
    candidates += _other_candidates(others, pattern, summary.skipped)
    taken = {c.case_id for c in candidates}
    candidates += vendor.vendor_candidates(vendor_sources, pattern, summary.skipped, taken)
    return candidates, summary


def _patient_regex(patient_pattern: str | None) -> re.Pattern[str] | None:
    """``--patient-pattern`` compiled; it must have a ``(?P<patient>...)`` group."""
    try:
        pattern = re.compile(patient_pattern) if patient_pattern else None
    except re.error as err:
        raise ConfigError(f"invalid --patient-pattern: {err}") from err
    if pattern is not None and "patient" not in pattern.groupindex:
        raise ConfigError("--patient-pattern needs a named group (?P<patient>...)")
    return pattern


def _scan(
    root: Path,
    labels_path: Path | None,
    pairs_csv: PathLike | None,
    pattern: re.Pattern[str] | None,
    summary: BuildSummary,
    masks_dir: Path,
) -> tuple[list[Candidate], dict[str, Path]]:
    """The scans (from the pairs CSV, or discovered) and their label maps by case id
    (per-B-scan vendor masks become NIfTI label maps in ``masks_dir``).

    Raises:
        DataError: no usable scan.
    """
    if pairs_csv is not None:
        candidates, labels = read_pairs(Path(pairs_csv), root, summary.skipped)
    else:
        candidates, _ = discover_candidates(
            root, labels_dir=labels_path, pattern=pattern, summary=summary
        )
        labels = _match_labels(candidates, labels_path, summary.skipped) if labels_path else {}
        if labels_path is not None:
            labels |= vendor.vendor_mask_labels(
                candidates, labels_path, labels, masks_dir, summary.skipped
            )
    if not candidates:
        raise DataError(
            "no usable scans found", path=root, hint="see the skipped files listed above"
        )
    return candidates, labels


def _image_decisions(
    candidates: list[Candidate],
    pixel_spacing_mm: tuple[float, float] | None,
    skipped: list[SkippedItem],
) -> ImageCases:
    """Channels and spacing of the 2D image candidates; unreadable images are skipped (in
    place)."""
    decisions, unreadable = decide_image_cases([c.source for c in candidates], pixel_spacing_mm)
    for path, reason in unreadable.items():
        skipped.append(SkippedItem(path=str(path), reason=f"unreadable image: {reason}"))
    candidates[:] = [
        c for c in candidates if not (isinstance(c.source, Path) and c.source in unreadable)
    ]
    if not candidates:
        raise DataError("no readable scans found", hint="see the skipped files listed above")
    return decisions


def build_manifest(
    scan_dir: PathLike,
    output: PathLike,
    *,
    name: str | None = None,
    labels_dir: PathLike | None = None,
    pairs_csv: PathLike | None = None,
    n_folds: int = 5,
    seed: int = 0,
    test_fraction: float = 0.0,
    label_names: dict[int, str] | None = None,
    lesion_labels: Sequence[int] | None = None,
    patient_pattern: str | None = None,
    pseudonym_key: str | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> BuildResult:
    """Discover scans under ``scan_dir`` and build (not save) a manifest for ``output``.

    Args:
        scan_dir: the clinical export (``data_root`` of the manifest).
        output: where the manifest will be saved (paths are made relative to ``scan_dir`` and
            ``data_root`` relative to this file's folder).
        name: manifest name (default: output file stem).
        labels_dir: folder of label maps named by the pairing rules.
        pairs_csv: explicit ``image,label[,case_id,patient_id,study_date,laterality]`` CSV.
        n_folds: patient-level cross-validation folds (ignored without labels: an
            inference-only manifest puts every case in the test split, ``n_folds`` 1).
        seed: fold shuffling seed.
        test_fraction: fraction of labelled patients held out as the test split.
        label_names: ``{value: name}`` (default: ``labels.json`` in ``labels_dir``).
        lesion_labels: label values whose components are lesions.
        patient_pattern: regex with a ``(?P<patient>...)`` group to get patient ids from file names.
        pseudonym_key: replace patient ids (and the patient part of case ids) by keyed hashes
            (:mod:`medseg.manifest.pseudonym`); the mapping is returned in ``pseudonyms``.
        pixel_spacing_mm: ``[row, column]`` mm for 2D image files without a sidecar spacing
            (``--spacing``; overrides the files' own resolution).

    Raises:
        ConfigError: bad options (pattern, CSV columns, folds); DataError: no scans found.
    """
    root = Path(scan_dir).resolve()
    labels_path = None if labels_dir is None else Path(labels_dir).resolve()
    if labels_path is not None and pairs_csv is not None:
        raise ConfigError("give either --labels or --pairs, not both")
    summary = BuildSummary()
    masks_dir = Path(output).resolve().parent / f"{Path(output).stem}_labels"
    candidates, labels = _scan(
        root, labels_path, pairs_csv, _patient_regex(patient_pattern), summary, masks_dir
    )
    names, lesions, mapping = _label_spec(labels_path, labels, label_names, lesion_labels)
    images2d = _image_decisions(candidates, pixel_spacing_mm, summary.skipped)
    candidates.sort(key=lambda c: c.case_id)
    cases = [_to_case(c, labels.get(c.case_id), root, images2d) for c in candidates]
    cases, table = pseudonymize_cases(cases, pseudonym_key) if pseudonym_key else (cases, [])
    cases = assign_splits(cases, n_folds=n_folds, seed=seed, test_fraction=test_fraction)
    out_dir = Path(output).resolve().parent
    summary.skipped = [_relative_skip(item, root) for item in summary.skipped]
    manifest = Manifest(
        name=name or naming.strip_extension(Path(output).name).removesuffix(".json"),
        data_root=_relative(root, out_dir),
        labels=names,
        lesion_labels=lesions,
        label_mapping=mapping,
        channels=list(images2d.channels),
        n_folds=n_folds if labels else 1,  # inference only: no folds
        cases=cases,
        skipped=summary.skipped,
    )
    summary.count(cases)
    logger.info(
        "manifest %s: %s (%d labelled), %d skipped",
        *(manifest.name, plural(summary.cases, "case"), summary.labelled, len(summary.skipped)),
    )
    return BuildResult(manifest, summary, table)
