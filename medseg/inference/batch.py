"""Batch prediction: many cases, resumable, bad cases recorded and skipped, atomic outputs.

Per case in ``OUT_DIR``: ``<case_id>.nii.gz`` (label map, source shape and affine),
``<case_id>.seg.dcm`` (DICOM SEG, with ``dicom_seg`` and a DICOM source), ``<case_id>.png``
(preview); Mask R-CNN runs add ``<case_id>_instances.nii.gz`` (instance ids, same grid) and
``<case_id>.json`` (``{"instances": [...]}``, records of :mod:`medseg.inference.instance_outputs`).
``run_report.json`` records versions, checkpoint hashes, device, settings and each case's status,
seconds and error; it is rewritten (atomically) after every case, so an interrupted run leaves a
report of what was done. Under torchrun, ranks take every world-size-th case and rank 0 merges
the reports (:func:`predict_batch`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg._version import __version__
from medseg.artifacts import RUN_REPORT, CaseResult, RunReport, read_run_report
from medseg.errors import DataError, MedsegError
from medseg.inference.case_outputs import discard_outputs, write_case_outputs
from medseg.inference.cases import CaseInput
from medseg.inference.predictor import Predictor
from medseg.io.atomic import jsonable, write_json_atomic
from medseg.io.read import read_volume
from medseg.run_folder import DistInfo
from medseg.types import PathLike

logger = logging.getLogger(__name__)
REPORT = RUN_REPORT


@dataclass
class BatchOptions:
    overwrite: bool = False
    dicom_seg: bool = False
    preview: bool = True
    tta: bool | None = None


def expected_outputs(
    case: CaseInput, options: BatchOptions, is_dicom: bool, *, instances: bool = False
) -> dict[str, str]:
    outputs = {"labels": f"{case.case_id}.nii.gz"}
    if instances:
        outputs["instances"] = f"{case.case_id}_instances.nii.gz"
        outputs["instances_json"] = f"{case.case_id}.json"
    if options.preview:
        outputs["preview"] = f"{case.case_id}.png"
    if options.dicom_seg and is_dicom:
        outputs["dicom_seg"] = f"{case.case_id}.seg.dcm"
    return outputs


def _base(case: CaseInput) -> CaseResult:
    return CaseResult(
        case_id=case.case_id,
        status="failed",
        source=case.source_text,
        patient_id=case.patient_id,
        study_date=case.study_date,
        laterality=case.laterality,
        modality=case.modality,
    )


def _instances(predictor: Predictor) -> bool:
    return predictor.resolved.task.kind == "instance"


def predict_case(
    predictor: Predictor, case: CaseInput, out_dir: Path, options: BatchOptions
) -> CaseResult:
    """Segment one case and write its outputs; never raises for data problems.

    ``done`` only when every output is written; ``partial`` when the label map is but another
    output failed; ``failed`` keeps no file of the case (see :mod:`.case_outputs`).
    """
    result = _base(case)
    start = time.perf_counter()
    if case.error:
        result.error = case.error
        return result
    outputs: dict[str, str] = {}
    try:
        volumes = [read_volume(s, root=case.root) for s in case.sources]
        volume = volumes[0]
        outputs = expected_outputs(
            case, options, volume.meta.get("format") == "dicom", instances=_instances(predictor)
        )
        prediction = predictor.predict(volumes, tta=options.tta)
        written = write_case_outputs(volume, prediction, predictor.label_names, out_dir, outputs)
        result.outputs, result.missing = written.outputs, written.missing
        result.notes = written.notes + (
            ["no DICOM SEG: the source is not DICOM"]
            if options.dicom_seg and "dicom_seg" not in outputs
            else []
        )
        result.status, result.error = (
            ("partial", "; ".join(written.errors)) if written.missing else ("done", None)
        )
        result.patient_id = result.patient_id or volume.meta.get("patient_id")
        result.study_date = result.study_date or volume.meta.get("study_date")
        result.laterality = result.laterality or volume.meta.get("laterality")
        result.modality = result.modality or volume.meta.get("modality")
    except MedsegError as err:
        result.error = err.describe()
    except Exception as err:  # one broken case must not end the batch
        logger.debug("case %s failed:\n%s", case.case_id, traceback.format_exc())
        result.error = f"internal error ({type(err).__name__}): {err}"
    if result.status == "failed":  # nothing of a failed case may look complete
        discard_outputs(out_dir, outputs, list(outputs))
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _already_done(
    case: CaseInput,
    out_dir: Path,
    options: BatchOptions,
    previous: dict[str, CaseResult],
    instances: bool = False,
) -> CaseResult | None:
    """The earlier run's row, marked ``reused``, when its outputs are all still there."""
    old = previous.get(case.case_id)
    if options.overwrite or old is None or old.status in ("failed", "partial"):
        return None
    is_dicom = bool(old.outputs.get("dicom_seg")) or not options.dicom_seg
    wanted = expected_outputs(case, options, is_dicom, instances=instances)
    if not all((out_dir / name).exists() for name in wanted.values()):
        return None
    return old.model_copy(update={"status": "reused", "error": None})


def load_previous(out_dir: Path) -> dict[str, CaseResult]:
    """Case rows of an earlier ``run_report.json`` in ``out_dir`` (empty if none or unusable)."""
    path = out_dir / REPORT
    if not path.is_file():
        return {}
    try:
        return {row.case_id: row for row in read_run_report(path).cases}
    except DataError as err:
        logger.warning("earlier %s not used: %s", REPORT, err.describe(with_hint=False))
        return {}


def predict_cases(
    predictor: Predictor,
    cases: Sequence[CaseInput],
    out_dir: PathLike,
    options: BatchOptions,
    *,
    report_path: Path | None = None,
) -> Iterator[CaseResult]:
    """Predict ``cases`` into ``out_dir``; yields each result and keeps the report current."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    previous = load_previous(folder)
    results: list[CaseResult] = []
    for case in cases:
        done = _already_done(case, folder, options, previous, _instances(predictor))
        result = done or predict_case(predictor, case, folder, options)
        results.append(result)
        if result.status in ("failed", "partial"):
            logger.warning("case %s %s: %s", case.case_id, result.status, result.error)
        write_run_report(report_path or folder / REPORT, predictor, results, options)
        yield result


def write_run_report(
    path: Path, predictor: Predictor, results: Sequence[CaseResult], options: BatchOptions
) -> Path:
    """``run_report.json``: provenance, settings and one row per case."""
    resolved = predictor.resolved
    report = RunReport(
        medseg_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **predictor.provenance,
        settings={
            "overlap": resolved.infer.overlap,
            "blend": resolved.infer.blend,
            "sw_batch_size": resolved.infer.sw_batch_size,
            "tta": resolved.infer.tta if options.tta is None else options.tta,
            "crop_foreground": resolved.infer.crop_foreground,
            "skip_empty_windows": resolved.infer.skip_empty_windows,
            "postprocess": resolved.postprocess.model_dump(),
            "dicom_seg": options.dicom_seg,
            **({"instances": resolved.instances.model_dump()} if _instances(predictor) else {}),
        },
        labels=dict(resolved.plan.labels),
        lesion_labels=list(resolved.plan.lesion_labels),
        summary=RunReport.count(results),
        cases=list(results),
    )
    return write_json_atomic(path, jsonable(report.model_dump(mode="json")))


def predict_batch(
    predictor: Predictor,
    cases: Sequence[CaseInput],
    out_dir: PathLike,
    options: BatchOptions,
    *,
    dist: DistInfo | None = None,
) -> Iterator[CaseResult]:
    """Predict this process's share of ``cases``; yields each of its results.

    One process (``dist`` None or a world of one) predicts every case. Under ``torchrun`` rank
    ``r`` of ``n`` takes cases ``r, r + n, ...`` and keeps its own report; when every rank is
    done, rank 0 merges them into ``run_report.json`` (cases in input order).
    """
    info = dist or DistInfo()
    folder = Path(out_dir)
    report = rank_report_path(folder, info.rank) if info.enabled else None
    yield from predict_cases(predictor, info.shard(cases), folder, options, report_path=report)
    if info.enabled:
        _merge_when_all_done(folder, info, [c.case_id for c in cases])


def _merge_when_all_done(out_dir: Path, info: DistInfo, order: Sequence[str]) -> None:
    """Wait for every rank (gloo process group), merge the reports on rank 0, wait again."""
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="gloo")
    dist.barrier()
    if info.is_main:
        merge_rank_reports(out_dir, info.world_size, order)
    dist.barrier()
    if owned:
        dist.destroy_process_group()


def rank_report_path(out_dir: Path, rank: int) -> Path:
    return out_dir / f".run_report.rank{rank}.json"


def merge_rank_reports(out_dir: Path, world_size: int, order: Sequence[str]) -> Path:
    """Rank 0: merge the per-rank reports into ``run_report.json`` (cases in input order)."""
    parts = [
        read_run_report(rank_report_path(out_dir, r))
        for r in range(world_size)
        if rank_report_path(out_dir, r).exists()
    ]
    if not parts:
        raise FileNotFoundError("no per-rank run reports to merge")
    rows = {row.case_id: row for part in parts for row in part.cases}
    cases = [rows[c] for c in order if c in rows]
    merged = parts[0].model_copy(
        update={"cases": cases, "summary": RunReport.count(cases), "world_size": world_size}
    )
    target = write_json_atomic(out_dir / REPORT, jsonable(merged.model_dump(mode="json")))
    for r in range(world_size):
        rank_report_path(out_dir, r).unlink(missing_ok=True)
    return target
