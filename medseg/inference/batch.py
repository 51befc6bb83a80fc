"""Batch prediction: many cases, resumable, bad cases recorded and skipped, atomic outputs.

Per case in ``OUT_DIR``: ``<case_id>.nii.gz`` (label map, source shape and affine),
``<case_id>.seg.dcm`` (DICOM SEG, with ``dicom_seg`` and a DICOM source), ``<case_id>.png``
(preview); Mask R-CNN runs add ``<case_id>_instances.nii.gz`` (instance ids, same grid) and
``<case_id>.json`` (``{"instances": [...]}``, records of :mod:`medseg.inference.instance_outputs`).
``run_report.json`` records versions, checkpoint hashes, device, settings and each case's status,
seconds and error; it is rewritten (atomically) after every case, so an interrupted run leaves a
report of what was done. Under torchrun, ranks take every world-size-th case and rank 0 merges
the reports.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medseg._version import __version__
from medseg.errors import MedsegError
from medseg.inference.cases import CaseInput
from medseg.inference.instance_outputs import write_instances
from medseg.inference.predictor import Prediction, Predictor
from medseg.inference.preview import write_preview
from medseg.io.atomic import jsonable, write_json_atomic
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.nifti import write_nifti
from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.types import PathLike

logger = logging.getLogger(__name__)
REPORT = "run_report.json"
REPORT_SCHEMA_VERSION = 1


@dataclass
class BatchOptions:
    overwrite: bool = False
    dicom_seg: bool = False
    preview: bool = True
    tta: bool | None = None


@dataclass
class CaseResult:
    """One case's outcome (a row of ``run_report.json``)."""

    case_id: str
    status: str  # done | skipped | failed
    seconds: float = 0.0
    error: str | None = None
    source: Any = ""
    patient_id: str | None = None
    study_date: str | None = None
    laterality: str | None = None
    modality: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)


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
        case.case_id,
        "failed",
        source=case.source_text,
        patient_id=case.patient_id,
        study_date=case.study_date,
        laterality=case.laterality,
        modality=case.modality,
    )


def _write_outputs(
    volume: Volume,
    prediction: Prediction,
    predictor: Predictor,
    out_dir: Path,
    outputs: dict[str, str],
) -> list[str]:
    notes = []
    write_nifti(prediction.labels, out_dir / outputs["labels"])
    if "instances" in outputs:
        write_instances(
            prediction, out_dir / outputs["instances"], out_dir / outputs["instances_json"]
        )
    if "preview" in outputs:
        write_preview(volume.array, prediction.labels.array, out_dir / outputs["preview"])
    if "dicom_seg" in outputs:
        files = volume.meta.get("files") or []
        if volume.meta.get("format") != "dicom" or not files:
            notes.append("no DICOM SEG: the source is not DICOM")
        else:
            names = {k: v for k, v in predictor.label_names.items() if k != 0}
            write_dicom_seg(
                prediction.labels,
                files,
                out_dir / outputs["dicom_seg"],
                label_names=names,
                frame_order=volume.meta.get("frame_order"),
            )
    return notes


def _instances(predictor: Predictor) -> bool:
    return predictor.resolved.task.kind == "instance"


def predict_case(
    predictor: Predictor, case: CaseInput, out_dir: Path, options: BatchOptions
) -> CaseResult:
    """Segment one case and write its outputs; never raises for data problems."""
    result = _base(case)
    start = time.perf_counter()
    if case.error:
        result.error = case.error
        return result
    try:
        volumes = [read_volume(s, root=case.root) for s in case.sources]
        volume = volumes[0]
        outputs = expected_outputs(
            case, options, volume.meta.get("format") == "dicom", instances=_instances(predictor)
        )
        prediction = predictor.predict(volumes, tta=options.tta)
        notes = _write_outputs(volume, prediction, predictor, out_dir, outputs)
        result.status, result.outputs = (
            "done",
            {k: v for k, v in outputs.items() if (out_dir / v).exists()},
        )
        result.error = "; ".join(notes) or None
        result.patient_id = result.patient_id or volume.meta.get("patient_id")
        result.study_date = result.study_date or volume.meta.get("study_date")
        result.laterality = result.laterality or volume.meta.get("laterality")
        result.modality = result.modality or volume.meta.get("modality")
    except MedsegError as err:
        result.error = err.describe()
    except Exception as err:  # one broken case must not end the batch
        logger.debug("case %s failed:\n%s", case.case_id, traceback.format_exc())
        result.error = f"internal error ({type(err).__name__}): {err}"
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _already_done(
    case: CaseInput,
    out_dir: Path,
    options: BatchOptions,
    previous: dict[str, dict[str, Any]],
    instances: bool = False,
) -> CaseResult | None:
    old = previous.get(case.case_id)
    if options.overwrite or old is None or old.get("status") not in ("done", "skipped"):
        return None
    outputs: dict[str, str] = old.get("outputs", {})
    wanted = expected_outputs(
        case, options, bool(outputs.get("dicom_seg")) or not options.dicom_seg, instances=instances
    )
    if not all((out_dir / name).exists() for name in wanted.values()):
        return None
    return CaseResult(**{**old, "status": "skipped", "error": None})


def load_previous(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Case rows of an earlier ``run_report.json`` in ``out_dir`` (empty if none)."""
    path = out_dir / REPORT
    if not path.is_file():
        return {}
    try:
        return {row["case_id"]: row for row in json.loads(path.read_text())["cases"]}
    except (ValueError, KeyError, TypeError):
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
        if result.status == "failed":
            logger.warning("case %s failed: %s", case.case_id, result.error)
        write_run_report(report_path or folder / REPORT, predictor, results, options)
        yield result


def write_run_report(
    path: Path, predictor: Predictor, results: Sequence[CaseResult], options: BatchOptions
) -> Path:
    """``run_report.json``: provenance, settings and one row per case."""
    resolved = predictor.resolved
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "medseg_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **predictor.provenance,
        "settings": {
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
        "labels": dict(resolved.plan.labels),
        "lesion_labels": list(resolved.plan.lesion_labels),
        "summary": {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")},
        "cases": [asdict(r) for r in results],
    }
    return write_json_atomic(path, jsonable(report))


def rank_report_path(out_dir: Path, rank: int) -> Path:
    return out_dir / f".run_report.rank{rank}.json"


def merge_rank_reports(out_dir: Path, world_size: int, order: Sequence[str]) -> Path:
    """Rank 0: merge the per-rank reports into ``run_report.json`` (cases in input order)."""
    parts = [
        json.loads(rank_report_path(out_dir, r).read_text())
        for r in range(world_size)
        if rank_report_path(out_dir, r).exists()
    ]
    if not parts:
        raise FileNotFoundError("no per-rank run reports to merge")
    merged = dict(parts[0])
    rows = {row["case_id"]: row for part in parts for row in part["cases"]}
    merged["cases"] = [rows[c] for c in order if c in rows]
    merged["summary"] = {
        s: sum(r["status"] == s for r in merged["cases"]) for s in ("done", "skipped", "failed")
    }
    merged["world_size"] = world_size
    target = write_json_atomic(out_dir / REPORT, merged)
    for r in range(world_size):
        rank_report_path(out_dir, r).unlink(missing_ok=True)
    return target
