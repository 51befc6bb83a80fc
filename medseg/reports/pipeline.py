"""The report stage end to end: prediction folder -> per-patient reports + ``cohort.csv``.

:func:`write_reports` is a generator yielding one :class:`CaseOutcome` per case, so callers (the
CLI) can show progress. A case that cannot be read is recorded as failed in its patient's report
and the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg._version import __version__
from medseg.artifacts import ReportStatus
from medseg.errors import DataError, GeometryError, MedsegError
from medseg.io.atomic import ensure_output_dir, write_bytes_atomic
from medseg.io.dicom_seg import checkpoint_version
from medseg.io.grid import onto_grid
from medseg.io.label_files import read_label_map
from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.reports.build import build_patient_report, is_oct, measure_study
from medseg.reports.charts import bscan_area_figure, etdrs_figure
from medseg.reports.cohort import write_cohort_index
from medseg.reports.dicom_sr import (
    SrCase,
    SrSettings,
    read_seg_header,
    sr_file_name,
    write_study_sr,
)
from medseg.reports.eval_results import load_evaluation
from medseg.reports.figures import FigureImage
from medseg.reports.inputs import (
    CaseSource,
    PredictionSet,
    load_instance_info,
    normalize_date,
    normalize_laterality,
)
from medseg.reports.localizer import localizer_figure, localizer_of
from medseg.reports.overlays import ct_lesion_figure, oct_lesion_figure
from medseg.reports.phi import read_personal_data
from medseg.reports.render import (
    cohort_rows,
    patient_folder_name,
    write_cohort_csv,
    write_patient_report,
)
from medseg.reports.schema import (
    Checkpoint,
    ClassEvaluation,
    PatientReport,
    PersonalData,
    Provenance,
    StudyReport,
)
from medseg.text import plural
from medseg.types import PathLike

logger = logging.getLogger(__name__)

MAX_LESION_FIGURES = 3


@dataclass(frozen=True)
class CaseOutcome:
    """What happened to one case: ``done``, ``failed`` (error) or ``not_predicted`` (prediction
    failed, so nothing to measure); ``dicom_sr``: the SR file of the case's study
    (``--dicom-sr``; the cases of one study share it), or ``sr_error`` saying why none was."""

    case_id: str
    patient_id: str
    status: ReportStatus
    error: str | None
    n_lesions: int | None
    seconds: float
    dicom_sr: str | None = None
    sr_error: str | None = None


@dataclass
class _StudyWork:
    study: StudyReport
    figures: list[FigureImage]
    personal_data: PersonalData | None = None
    dicom_sr: str | None = None
    sr_error: str | None = None


def _scalars(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
            for k, v in raw.items()}  # fmt: skip


def build_provenance(
    predictions: PredictionSet, eval_dir: PathLike | None = None, notice: str | None = None
) -> Provenance:
    """Provenance from the run report (model, checkpoint sha256, versions) and this run."""
    run = predictions.run_report
    return Provenance(
        report_created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        report_medseg_version=__version__,
        prediction_dir=str(predictions.pred_dir),
        prediction_created=run.created,
        prediction_medseg_version=run.medseg_version,
        model=_scalars(run.model),
        checkpoints=[Checkpoint(**c.model_dump()) for c in run.checkpoints],
        versions=dict(run.versions),
        device=run.device,
        evaluation_dir=None if eval_dir is None else str(eval_dir),
        notice=notice,
    )


def _read_image(case: CaseSource, study: StudyReport) -> Volume | None:
    if case.image is None:
        return None
    try:
        return read_volume(case.image, root=case.image_root)
    except MedsegError as err:
        study.warnings.append(f"source image not used: {err.describe(with_hint=False)}")
        return None


def _on_image_grid(
    labels: Volume, image: Volume | None, study: StudyReport
) -> tuple[Volume, Volume | None]:
    """The label map on the source image's grid (moved, never resampled), or the image dropped."""
    if image is None:
        return labels, None
    try:
        return onto_grid(labels, image.affine, image.shape, what="label map"), image
    except GeometryError as err:
        study.warnings.append(f"source image not used: {err.describe(with_hint=False)}")
        return labels, None


def _figures(
    study: StudyReport, labels: Volume, image: Volume | None, names: Mapping[int, str]
) -> list[FigureImage]:
    classes = {t.label: t.label_name for t in study.totals} or dict(names)
    out: list[FigureImage] = []
    if study.oct is not None:
        out.append(etdrs_figure(labels, study.oct, classes))
        if labels.shape[2] > 1:  # one B-scan: its area is in the totals already
            out.append(bscan_area_figure(study.oct))
    largest = sorted(study.lesions, key=lambda les: -les.volume_mm3)[:MAX_LESION_FIGURES]
    direction = study.oct.scan_direction if study.oct is not None else None
    ends = (direction.ascan_first, direction.ascan_last) if direction is not None else None
    for lesion in largest:
        if is_oct(study):
            out.append(oct_lesion_figure(image, labels, lesion, classes, ends))
        else:
            out.append(ct_lesion_figure(image, labels, lesion, classes, study.modality))
    return out


def _measure_case(
    case: CaseSource, predictions: PredictionSet, study: StudyReport
) -> tuple[StudyReport, list[FigureImage]]:
    labels = read_label_map(case.labels_path, label_names=predictions.label_names)
    instances = read_volume(case.instances_path) if case.instances_path else None
    labels, image = _on_image_grid(labels, _read_image(case, study), study)
    if image is not None:  # header facts the run report and manifest did not give
        study.laterality = study.laterality or normalize_laterality(image.meta.get("laterality"))  # type: ignore[assignment]
        study.modality = study.modality or image.meta.get("modality") or None
        study.study_date = study.study_date or normalize_date(image.meta.get("study_date"))
        study.scanner = scanner_name(image.meta)
        if image.meta.get("scan_pattern") == "line":
            study.warnings.append(
                "single B-scan: areas (mm²) are real; volumes (nL) use a nominal slab of one "
                "lateral pixel"
            )
    measured = measure_study(
        study, labels, label_names=predictions.label_names,
        lesion_labels=predictions.lesion_labels, image=image, instances=instances,
        instance_info=load_instance_info(case.instances_json) if instances else None,
        min_volume_mm3=predictions.min_lesion_mm3,
    )  # fmt: skip
    figures = _figures(measured, labels, image, predictions.label_names)
    localizer = localizer_of(image)
    if localizer is not None and measured.oct is not None:
        fluid = {t.label: t.label_name for t in measured.totals} or dict(predictions.label_names)
        figures.insert(0, localizer_figure(localizer, labels, measured.oct, fluid))
    return measured, figures


def scanner_name(meta: Mapping[str, Any]) -> str | None:
    """``"<manufacturer> <model>"`` from a volume's metadata (vendor files), if known."""
    parts = [str(meta[k]) for k in ("manufacturer", "device") if meta.get(k)]
    return " ".join(parts) or None


def _process_case(
    case: CaseSource,
    predictions: PredictionSet,
    evaluation: list[ClassEvaluation],
    include_phi: bool,
) -> _StudyWork:
    study = StudyReport(
        case_id=case.case_id, study_date=case.study_date, laterality=case.laterality,  # type: ignore[arg-type]
        modality=case.modality, prediction_file=case.labels_path.name, evaluation=evaluation,
    )  # fmt: skip
    personal = read_personal_data(case.image, root=case.image_root) if include_phi else None
    if case.status == "failed":
        study.status, study.error = "not_predicted", f"prediction failed: {case.error or '?'}"
        return _StudyWork(study, [], personal)
    try:
        measured, figures = _measure_case(case, predictions, study)
    except MedsegError as err:
        study.status, study.error = "failed", err.describe()
        return _StudyWork(study, [], personal)
    except Exception as err:  # a bug, but one case must not stop the batch
        logger.debug("case %s failed", case.case_id, exc_info=True)
        study.status, study.error = "failed", f"internal error {type(err).__name__}: {err}"
        return _StudyWork(study, [], personal)
    return _StudyWork(measured, figures, personal)


def _outcome(result: _StudyWork, patient_id: str, seconds: float) -> CaseOutcome:
    study = result.study
    n_lesions = len(study.lesions) if study.status == "done" else None
    if study.status == "done":
        logger.info("case %s: %s", study.case_id, plural(n_lesions or 0, "lesion"))
    else:
        logger.warning("case %s %s: %s", study.case_id, study.status, study.error)
    return CaseOutcome(
        study.case_id, patient_id, study.status, study.error, n_lesions, seconds,
        dicom_sr=result.dicom_sr, sr_error=result.sr_error,
    )  # fmt: skip


def _no_sr(result: _StudyWork, why: str) -> None:
    result.sr_error = f"no DICOM SR: {why}"
    result.study.warnings.append(result.sr_error)
    logger.warning("case %s: %s", result.study.case_id, result.sr_error)


def _copy_seg(case: CaseSource, folder: Path) -> Any:
    """Copy the case's SEG to ``<folder>/<case_id>.seg.dcm``; its header dataset.

    Raises:
        DataError: no SEG, or an unreadable one.
    """
    if case.dicom_seg is None or not case.dicom_seg.is_file():
        raise DataError("no DICOM SEG (run predict --dicom-seg on a DICOM source)")
    seg = folder / f"{case.case_id}.seg.dcm"
    write_bytes_atomic(seg, case.dicom_seg.read_bytes())
    return read_seg_header(seg)


def _write_srs(
    pairs: list[tuple[CaseSource, _StudyWork]], folder: Path, settings: SrSettings
) -> None:
    """One ``<folder>/<study key>.sr.dcm`` per source study of the patient's measured cases,
    next to copies of their SEGs; a case without one says why."""
    studies: dict[str, list[tuple[_StudyWork, Any]]] = {}
    for case, result in pairs:
        if result.study.status != "done":
            continue
        try:
            seg = _copy_seg(case, folder)
        except MedsegError as err:
            _no_sr(result, err.describe(with_hint=False))
            continue
        studies.setdefault(sr_file_name(seg), []).append((result, seg))
    for name, members in studies.items():
        try:
            write_study_sr([SrCase(r.study, seg) for r, seg in members], folder / name, settings)
        except MedsegError as err:
            for result, _ in members:
                _no_sr(result, err.describe(with_hint=False))
            continue
        for result, _ in members:
            result.dicom_sr = name


@dataclass(frozen=True)
class _Context:
    """What every patient's work needs (picklable, for worker processes)."""

    predictions: PredictionSet
    evaluation: dict[str, list[ClassEvaluation]]
    provenance: Provenance
    root: Path
    include_phi: bool
    dicom_sr: SrSettings | None = None


def _patient_cases(
    ctx: _Context, patient_id: str, cases: list[CaseSource], folder: str
) -> Iterator[tuple[CaseOutcome, _StudyWork]]:
    """Each case measured; with ``--dicom-sr`` the outcomes come once the study SRs, which
    need every case of their study, are written."""
    held: list[tuple[CaseSource, _StudyWork, float]] = []
    for case in cases:
        start = time.perf_counter()
        evaluation = ctx.evaluation.get(case.case_id, [])
        result = _process_case(case, ctx.predictions, evaluation, ctx.include_phi)
        seconds = time.perf_counter() - start
        if ctx.dicom_sr is None:
            yield _outcome(result, patient_id, seconds), result
        else:
            held.append((case, result, seconds))
    if ctx.dicom_sr is not None:
        _write_srs([(case, result) for case, result, _ in held], ctx.root / folder, ctx.dicom_sr)
        for _, result, seconds in held:
            yield _outcome(result, patient_id, seconds), result


def _finish_patient(
    ctx: _Context, patient_id: str, results: list[_StudyWork], folder: str
) -> list[dict[str, Any]]:
    """Build and write one patient's report; return its cohort rows."""
    report = _patient_report(patient_id, results, ctx.predictions, ctx.provenance)
    figures = {r.study.case_id: r.figures for r in results}
    write_patient_report(report, ctx.root, figures, folder_name=folder)
    return cohort_rows(report)


def _whole_patient(
    ctx: _Context, patient_id: str, cases: list[CaseSource], folder: str
) -> tuple[list[CaseOutcome], list[dict[str, Any]]]:
    """One patient end to end (run in a worker process)."""
    pairs = list(_patient_cases(ctx, patient_id, cases, folder))
    rows = _finish_patient(ctx, patient_id, [result for _, result in pairs], folder)
    return [outcome for outcome, _ in pairs], rows


def _in_parallel(
    ctx: _Context, folders: dict[str, str], jobs: int, rows: dict[str, list[dict[str, Any]]]
) -> Iterator[CaseOutcome]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(_whole_patient, ctx, patient_id, cases, folders[patient_id]): patient_id
            for patient_id, cases in ctx.predictions.patients.items()
        }
        for future in as_completed(futures):
            outcomes, rows[futures[future]] = future.result()
            yield from outcomes


def write_reports(
    predictions: PredictionSet,
    out_dir: PathLike,
    *,
    eval_dir: PathLike | None = None,
    include_phi: bool = False,
    jobs: int = 1,
    notice: str | None = None,
    dicom_sr: bool = False,
) -> Iterator[CaseOutcome]:
    """Measure every case, write one report folder per patient and ``cohort.csv``.

    Args:
        predictions: from :func:`~medseg.reports.inputs.load_prediction_set`.
        out_dir: report folder (created); gets ``<patient_id>/report.{json,html}``,
            ``<patient_id>/lesions.csv`` and ``cohort.csv``.
        eval_dir: evaluation folder whose per-case agreement (Dice, HD95, lesions found) is
            added, if present.
        include_phi: copy PatientName / PatientBirthDate from DICOM sources into the reports.
        jobs: worker processes (patients are shared out; 1 = this process).
        notice: a line shown at the top of every report (e.g. that the model is a smoke run).
        dicom_sr: also write ``<patient_id>/<study key>.sr.dcm``, one TID 1500 measurement
            report per source study (:mod:`medseg.reports.dicom_sr`), next to copies of its
            cases' DICOM SEGs (``<case_id>.seg.dcm``).

    Yields:
        One :class:`CaseOutcome` per case: in patient order with one job, else as patients
        finish.

    Raises:
        ConfigError: ``out_dir`` cannot be written.
    """
    root = ensure_output_dir(out_dir, what="report folder")
    provenance = build_provenance(predictions, eval_dir, notice)
    ctx = _Context(predictions, load_evaluation(eval_dir), provenance, root, include_phi,
                   _sr_settings(predictions, provenance) if dicom_sr else None)  # fmt: skip
    used: set[str] = set()
    folders = {pid: _unique(patient_folder_name(pid), used) for pid in predictions.patients}
    rows: dict[str, list[dict[str, Any]]] = {}
    if jobs > 1 and len(folders) > 1:
        yield from _in_parallel(ctx, folders, jobs, rows)
    else:
        for patient_id, cases in predictions.patients.items():
            results = []
            for outcome, result in _patient_cases(ctx, patient_id, cases, folders[patient_id]):
                results.append(result)
                yield outcome
            rows[patient_id] = _finish_patient(ctx, patient_id, results, folders[patient_id])
    cohort = [row for pid in folders for row in rows[pid]]
    write_cohort_csv(cohort, root)
    write_cohort_index(cohort, folders, root, notice=notice)


def _sr_settings(predictions: PredictionSet, provenance: Provenance) -> SrSettings:
    hashes = [c.sha256 for c in provenance.checkpoints if c.sha256]
    return SrSettings(
        codings=predictions.label_codings,
        lesion_labels=list(predictions.lesion_labels or []),
        algorithm_version=checkpoint_version(hashes),
    )


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when two patient ids map to the same folder."""
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{name}_{n}"
    used.add(candidate.lower())
    return candidate


def _patient_report(
    patient_id: str, results: list[_StudyWork], predictions: PredictionSet, provenance: Provenance
) -> PatientReport:
    return build_patient_report(
        patient_id, [r.study for r in results], provenance=provenance,
        labels={str(k): v for k, v in predictions.label_names.items()},
        lesion_labels=predictions.lesion_labels or [],
        personal_data=next((r.personal_data for r in results if r.personal_data), None),
        warnings=predictions.warnings,
    )  # fmt: skip
