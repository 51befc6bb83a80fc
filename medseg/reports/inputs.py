"""Read what the report stage starts from: a prediction folder, its run report, an optional
manifest or image folder, and an optional evaluation folder.

The prediction folder (written by ``medseg predict``, or another tool) holds ``<case_id>`` label
maps in any format of :mod:`medseg.io.label_files` (NIfTI, MHA, NRRD, Slicer ``.seg.nrrd``, DICOM
SEG; nnU-Net's ``case.nii.gz`` names included), optionally ``<case_id>_instances.nii.gz`` +
``<case_id>.json`` (instances with scores), and ``run_report.json``. Every field of the run
report is optional: missing case metadata falls back to the manifest given with ``--images``,
then to defaults (patient = case id, study date unknown, numeric class names, every foreground
class a lesion class).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.artifacts import (
    RUN_REPORT,
    CaseResult,
    PredictStatus,
    RunReport,
    read_instances_file,
    read_run_report,
)
from medseg.errors import ConfigError, DataError
from medseg.io.image_files import IMAGE_FILE_SUFFIXES, ImageFileRef
from medseg.io.label_files import label_map_files
from medseg.io.read import DicomSeriesRef
from medseg.manifest.schema import Case, Manifest, load_manifest
from medseg.reports.measure import InstanceInfo
from medseg.types import PathLike

logger = logging.getLogger(__name__)

INSTANCES_SUFFIX = "_instances"
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm", *IMAGE_FILE_SUFFIXES)
_IMAGE_SUBFOLDERS = ("images", "imagesTr", "imagesTs")
NNUNET_FIRST_CHANNEL = "_0000"

ImageRef = str | DicomSeriesRef | ImageFileRef


@dataclass(frozen=True)
class CaseSource:
    """One predicted case and everything known about it before reading voxels."""

    case_id: str
    patient_id: str
    study_date: str | None
    laterality: str | None
    modality: str | None
    labels_path: Path
    instances_path: Path | None = None
    instances_json: Path | None = None
    image: ImageRef | None = None
    image_root: Path | None = None
    status: PredictStatus = "done"
    error: str | None = None


@dataclass
class PredictionSet:
    """A prediction folder resolved into cases, class names and provenance."""

    pred_dir: Path
    cases: list[CaseSource]
    label_names: dict[int, str]
    lesion_labels: list[int] | None
    run_report: RunReport = field(default_factory=RunReport)
    warnings: list[str] = field(default_factory=list)

    @property
    def min_lesion_mm3(self) -> float:
        """The prediction's post-processing floor (``settings.postprocess.min_volume_mm3`` of
        the run report; 0 when unknown): smaller components are not reported as lesions."""
        postprocess = self.run_report.settings.get("postprocess")
        value = postprocess.get("min_volume_mm3") if isinstance(postprocess, dict) else None
        return float(value) if isinstance(value, (int, float)) and value > 0 else 0.0

    @property
    def patients(self) -> dict[str, list[CaseSource]]:
        """Cases grouped by patient id, patients in first-seen order."""
        groups: dict[str, list[CaseSource]] = {}
        for case in self.cases:
            groups.setdefault(case.patient_id, []).append(case)
        return groups


def _read_run_report(pred_dir: Path, warnings: list[str]) -> RunReport:
    path = pred_dir / RUN_REPORT
    if not path.is_file():
        warnings.append(f"no {RUN_REPORT} in the prediction folder; provenance unknown")
        return RunReport()
    try:
        return read_run_report(path)
    except DataError as err:
        warnings.append(f"{RUN_REPORT} ignored: {err.message}")
        return RunReport()


def _discovered_label_maps(pred_dir: Path) -> dict[str, Path]:
    """Label maps of the folder by case id (any format of :mod:`medseg.io.label_files`)."""
    return {
        case_id: path
        for case_id, path in label_map_files(pred_dir).items()
        if not case_id.endswith(INSTANCES_SUFFIX)
    }


def _text(*values: Any) -> str | None:
    """First non-empty value as a string."""
    return next((str(v) for v in values if v not in (None, "")), None)


def normalize_laterality(value: Any) -> str | None:
    """``"OD"``/``"OS"`` from OD/OS, R/L or right/left (any case); ``None`` otherwise."""
    text = str(value or "").strip().upper()
    return {"OD": "OD", "R": "OD", "RIGHT": "OD", "OS": "OS", "L": "OS", "LEFT": "OS"}.get(text)


def normalize_date(value: Any) -> str | None:
    """ISO ``YYYY-MM-DD`` from DICOM ``YYYYMMDD`` or ISO ``YYYY-MM-DD[...]``; other text is kept.

    Example:
        >>> normalize_date("20240115"), normalize_date("2024-01-15T10:00")
        ('2024-01-15', '2024-01-15')
    """
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if (
        len(text) >= 10
        and text[4] == "-"
        and text[7] == "-"
        and text[:10].replace("-", "").isdigit()
    ):
        return text[:10]
    return text or None


def _find_image(folder: Path, case_id: str) -> str | None:
    """``<case_id>.<ext>``, nnU-Net's ``<case_id>_0000.<ext>`` or a ``<case_id>/`` folder."""
    for base in (folder, *(folder / sub for sub in _IMAGE_SUBFOLDERS)):
        for name in (case_id, f"{case_id}{NNUNET_FIRST_CHANNEL}"):
            for suffix in _IMAGE_SUFFIXES:
                if (base / f"{name}{suffix}").is_file():
                    return str(base / f"{name}{suffix}")
        if (base / case_id).is_dir():
            return str(base / case_id)
    return None


def _display_source(source: ImageRef) -> ImageRef:
    """What figures show: the grey image of a colour component reference."""
    if isinstance(source, ImageFileRef) and source.component is not None:
        return source.model_copy(update={"component": None})
    return source


def _run_report_source(source: Any) -> ImageRef | None:
    """An existing image named by a run report's ``source`` (first channel; grey of a colour
    component)."""
    if isinstance(source, list) and source:
        source = source[0]
    if isinstance(source, dict) and "path" in source:
        try:
            return _display_source(ImageFileRef.model_validate(source))
        except ValueError:
            return None
    if isinstance(source, str) and source and Path(source).exists():
        return source
    return None


def _output(pred_dir: Path, entry: CaseResult | None, key: str, default: str) -> Path | None:
    name = entry.outputs.get(key) if entry is not None else None
    path = pred_dir / (name or default)
    return path if (name or path.exists()) else None


def _case_source(
    case_id: str,
    entry: CaseResult | None,
    pred_dir: Path,
    manifest: Manifest | None,
    image_dir: Path | None,
    found: Path | None = None,
) -> CaseSource:
    mcase: Case | None = None
    if manifest is not None:
        mcase = next((c for c in manifest.cases if c.case_id == case_id), None)
    image: ImageRef | None = None
    root: Path | None = None
    if mcase is not None and manifest is not None:
        image, root = _display_source(mcase.images[manifest.channels[0]]), manifest.root
    elif image_dir is not None:
        image = _find_image(image_dir, case_id)
    if image is None:
        image = _run_report_source(entry.source if entry is not None else None)
    default = found.name if found is not None else f"{case_id}.nii.gz"
    labels_path = _output(pred_dir, entry, "labels", default)
    return CaseSource(
        case_id=case_id,
        patient_id=_text(entry and entry.patient_id, mcase and mcase.patient_id) or case_id,
        study_date=normalize_date(_text(entry and entry.study_date, mcase and mcase.study_date)),
        laterality=normalize_laterality(
            _text(entry and entry.laterality, mcase and mcase.laterality)
        ),
        modality=_text(entry and entry.modality, mcase and mcase.modality),
        labels_path=labels_path or pred_dir / default,
        instances_path=_output(pred_dir, entry, "instances", f"{case_id}{INSTANCES_SUFFIX}.nii.gz"),
        instances_json=_output(pred_dir, entry, "instances_json", f"{case_id}.json"),
        image=image,
        image_root=root,
        status=entry.status if entry is not None else "done",
        error=entry.error if entry is not None else None,
    )


def _open_images(images: PathLike | None) -> tuple[Manifest | None, Path | None]:
    if images is None:
        return None, None
    path = Path(images)
    if path.is_dir():
        return None, path
    if not path.is_file():
        raise ConfigError("--images does not exist", path=path)
    return load_manifest(path), None


def _label_names(run: RunReport, manifest: Manifest | None) -> dict[int, str]:
    if run.labels:
        return run.label_names()
    raw = manifest.labels if manifest is not None else {}
    return {int(k): str(v) for k, v in raw.items() if str(k).lstrip("-").isdigit()}


def _lesion_labels(run: RunReport, manifest: Manifest | None) -> list[int] | None:
    if run.lesion_labels:
        return list(run.lesion_labels)
    if manifest is not None and manifest.lesion_labels:
        return list(manifest.lesion_labels)
    return None


def load_prediction_set(pred_dir: PathLike, *, images: PathLike | None = None) -> PredictionSet:
    """Resolve a prediction folder into cases with metadata (no voxels are read).

    Args:
        pred_dir: folder written by ``medseg predict``.
        images: a manifest JSON, or a folder of the source images: ``<case_id>.nii.gz`` (also
            ``.nii``, ``.nrrd``, ``.mha``, ``.dcm``), nnU-Net's ``<case_id>_0000.nii.gz`` (also
            under ``images/``, ``imagesTr/``, ``imagesTs/``) or a ``<case_id>/`` folder; tells
            where the source images are (and supplies missing metadata).

    Returns:
        :class:`PredictionSet`; cases listed in the run report come first, then label maps found
        in the folder but not listed.

    Raises:
        ConfigError: ``images`` is not a readable manifest or folder.
        DataError: the folder holds no predicted label maps.
    """
    folder = Path(pred_dir)
    warnings: list[str] = []
    run = _read_run_report(folder, warnings)
    manifest, image_dir = _open_images(images)
    by_id = {e.case_id: e for e in run.cases}
    found = _discovered_label_maps(folder)
    ids = list(dict.fromkeys([*by_id, *found]))
    cases = [_case_source(i, by_id.get(i), folder, manifest, image_dir, found.get(i)) for i in ids]
    if not cases:
        raise DataError(
            "no predicted label maps (<case_id>.nii.gz, .nrrd, .seg.nrrd, .mha or DICOM SEG .dcm) "
            "in the prediction folder",
            path=folder,
            hint="run `medseg predict` first, or point at its output folder",
        )
    return PredictionSet(
        pred_dir=folder,
        cases=cases,
        label_names=_label_names(run, manifest),
        lesion_labels=_lesion_labels(run, manifest),
        run_report=run,
        warnings=warnings,
    )


def load_instance_info(path: Path | None) -> dict[int, InstanceInfo]:
    """Instance id -> class and score from ``<case_id>.json`` (empty if absent or unusable)."""
    if path is None or not path.is_file():
        return {}
    try:
        items = read_instances_file(path).instances
    except DataError as err:
        logger.warning(
            "instance file %s not used (%s); scores not reported", path.name, err.message
        )
        return {}
    return {i.instance_id: InstanceInfo(label=i.label, score=i.score) for i in items}
