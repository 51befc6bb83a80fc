"""Schemas of the files the stages hand each other (pydantic, no torch).

The writer builds these models and every reader parses with them, so a file either means what
the schema says or is reported as unusable; no reader guesses at names.

* ``OUT_DIR/run_report.json`` (``medseg predict``): :class:`RunReport`, one :class:`CaseResult`
  per case.
* ``OUT_DIR/<case_id>.json`` (Mask R-CNN predictions): :class:`InstancesFile`, one
  :class:`InstanceRecord` per id of ``<case_id>_instances.nii.gz``.
* ``EVAL_DIR/case_metrics.csv`` and ``EVAL_DIR/lesions.csv`` (``medseg evaluate``):
  :class:`CaseMetricsRow` and :class:`LesionRow` give the columns, in order, and parse the cells
  (``nan`` is NaN, an empty cell is "not applicable", booleans are ``true`` / ``false``).

Status words, one meaning each (:data:`PredictStatus`, :data:`EvalStatus`,
:data:`ReportStatus`): ``done`` - this stage produced the case's output now; ``reused`` -
``medseg predict`` kept the outputs of an earlier run (nothing recomputed); ``partial`` -
``medseg predict`` wrote the label map but not every other output (``missing`` names them);
``failed`` - this stage tried and could not (the error says why); ``skipped`` -
``medseg evaluate`` could not pair the case (no prediction or no reference, or not on the
reference grid); ``not_predicted`` - ``medseg report`` had no prediction to measure because
prediction failed; ``ok`` - evaluated.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medseg.errors import DataError
from medseg.types import PathLike

__all__ = [
    "CaseMetricsRow",
    "CaseResult",
    "CheckpointRecord",
    "ClassMetrics",
    "EvalStatus",
    "InstanceRecord",
    "InstancesFile",
    "LesionRow",
    "LesionStatus",
    "PredictStatus",
    "ReportStatus",
    "RunReport",
    "read_instances_file",
    "read_run_report",
]

RUN_REPORT = "run_report.json"
RUN_REPORT_SCHEMA_VERSION: Literal[1] = 1
INSTANCES_SCHEMA_VERSION: Literal[1] = 1

PredictStatus: TypeAlias = Literal["done", "reused", "partial", "failed"]
PREDICT_STATUSES: tuple[PredictStatus, ...] = ("done", "reused", "partial", "failed")
EvalStatus: TypeAlias = Literal["ok", "skipped", "failed"]
ReportStatus: TypeAlias = Literal["done", "not_predicted", "failed"]
LesionStatus: TypeAlias = Literal["TP", "FN", "FP"]


class _Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    return f"{where}: {e['msg']}"


Model = TypeVar("Model", bound=BaseModel)


def _read_json(
    path: PathLike, model: type[Model], unreadable: str, invalid: str, hint: str
) -> Model:
    """Parse a JSON artifact with its schema; a :class:`DataError` names the file and problem."""
    location = Path(path)
    try:
        return model.model_validate(json.loads(location.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{unreadable}: {err}", path=location) from err
    except ValidationError as err:
        raise DataError(f"{invalid}: {_first_error(err)}", path=location, hint=hint) from err


# ---------------------------------------------------------------- run_report.json


class CaseResult(_Artifact):
    """One case of ``medseg predict`` (a row of ``run_report.json``).

    Attributes:
        case_id: the case.
        status: ``done`` (every output written), ``reused`` (outputs of an earlier run kept),
            ``partial`` (the label map is written, the outputs in ``missing`` are not; a rerun
            redoes the case) or ``failed`` (no output kept).
        seconds: time the prediction took (reused: in the run that made it).
        error: why it failed, or why the ``missing`` outputs could not be written.
        source: the scan (path, the DICOM series' files, a 2D image file reference), or a list
            of them, one per input channel.
        patient_id, study_date, laterality, modality: from the manifest or the scan's header.
        outputs: output kind (``labels``, ``instances``, ``instances_json``, ``preview``,
            ``dicom_seg``) -> file name in the prediction folder; only complete files.
        missing: output kinds that were wanted but could not be written (``partial``).
        notes: what was done on the way (e.g. unevenly spaced slices resampled, no DICOM SEG
            for a non-DICOM source).
    """

    case_id: str
    status: PredictStatus
    seconds: float = 0.0
    error: str | None = None
    source: str | dict[str, Any] | list[str | dict[str, Any]] = ""
    patient_id: str | None = None
    study_date: str | None = None
    laterality: str | None = None
    modality: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @field_validator("status", mode="before")
    @classmethod
    def _legacy_status(cls, value: Any) -> Any:
        """Reports of medseg before 0.2 wrote ``skipped`` for outputs kept from a run."""
        return "reused" if value == "skipped" else value


class CheckpointRecord(_Artifact):
    """A checkpoint a prediction used."""

    path: str
    sha256: str
    fold: int = 0


class RunReport(_Artifact):
    """``run_report.json``: provenance, settings, and one :class:`CaseResult` per case.

    Every field has a default, so a report written by hand (or by an older version) with only
    some of them still reads; unknown fields are refused.
    """

    schema_version: Literal[1] = RUN_REPORT_SCHEMA_VERSION
    medseg_version: str | None = None
    created: str | None = None
    run_dir: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)
    checkpoints: list[CheckpointRecord] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict, description='{"0": "background", ...}')
    lesion_labels: list[int] = Field(default_factory=list)
    summary: dict[PredictStatus, int] = Field(default_factory=dict)
    cases: list[CaseResult] = Field(default_factory=list)
    world_size: int | None = Field(default=None, ge=1, description="torchrun ranks that wrote it")

    @field_validator("labels")
    @classmethod
    def _integer_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [k for k in labels if not k.lstrip("-").isdigit()]
        if bad:
            raise ValueError(f"label keys must be integers as strings, got {bad}")
        return labels

    @staticmethod
    def count(cases: Sequence[CaseResult]) -> dict[PredictStatus, int]:
        """``summary``: cases per status."""
        return {s: sum(c.status == s for c in cases) for s in PREDICT_STATUSES}

    def label_names(self, *, foreground_only: bool = False) -> dict[int, str]:
        """Label value -> name (without background with ``foreground_only``)."""
        names = {int(k): v for k, v in self.labels.items()}
        return {k: v for k, v in names.items() if k != 0} if foreground_only else names


def read_run_report(path: PathLike) -> RunReport:
    """Parse a ``run_report.json``.

    Raises:
        DataError: unreadable, not JSON, or not a run report (the first problem named).
    """
    return _read_json(
        path, RunReport, f"unreadable {RUN_REPORT}", "not a medseg run report",
        hint="it should be the run_report.json written by medseg predict",
    )  # fmt: skip


# ---------------------------------------------------------------- <case_id>.json (instances)


class InstanceRecord(_Artifact):
    """One predicted lesion instance (an id of ``<case_id>_instances.nii.gz``).

    Attributes:
        instance_id: the id in the instance map (1..K by descending score).
        label: its class (label value).
        score: detection confidence in [0, 1] (1 when a tool gives none).
        label_name: the class name.
        n_voxels, volume_mm3: its size on the source grid.
        box_voxel: ``[i0, j0, k0, i1, j1, k1]``, voxels ``i0 <= i < i1`` (source grid).
        box_lps_mm: ``[L0, P0, S0, L1, P1, S1]``, the patient-LPS box of the voxels' extent (mm).
    """

    instance_id: int = Field(ge=1)
    label: int = Field(ge=1)
    score: float = Field(default=1.0, ge=0.0, le=1.0)
    label_name: str | None = None
    n_voxels: int | None = Field(default=None, ge=0)
    volume_mm3: float | None = Field(default=None, ge=0.0)
    box_voxel: list[int] | None = Field(default=None, min_length=6, max_length=6)
    box_lps_mm: list[float] | None = Field(default=None, min_length=6, max_length=6)


class InstancesFile(_Artifact):
    """``<case_id>.json`` beside a Mask R-CNN prediction."""

    schema_version: Literal[1] = INSTANCES_SCHEMA_VERSION
    instances: list[InstanceRecord] = Field(default_factory=list)


def read_instances_file(path: PathLike) -> InstancesFile:
    """Parse a ``<case_id>.json`` instance list.

    Raises:
        DataError: unreadable, not JSON, or not an instance list.
    """
    return _read_json(
        path, InstancesFile, "unreadable instance list", "invalid instance list",
        hint='expected {"instances": [{"instance_id": 1, "label": 2, "score": 0.9}, ...]}',
    )  # fmt: skip


# ---------------------------------------------------------------- evaluation CSVs


class _CsvRow(_Artifact):
    """A CSV row: ``nan`` is NaN, an empty cell None (not applicable)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV header, in order."""
        return tuple(f.alias or name for name, f in cls.model_fields.items())

    def cells(self) -> dict[str, Any]:
        """Column name -> value, for writing."""
        return self.model_dump(by_alias=True)


class ClassMetrics(_CsvRow):
    """All metrics of one class in one case (definitions in :mod:`medseg.evaluation.metrics`),
    the metric columns of ``case_metrics.csv``.

    Attributes:
        dice, iou, precision, recall: voxel overlap, in [0, 1].
        volume_pred_mm3, volume_ref_mm3: mask volumes; ``volume_diff_mm3`` = pred - ref.
        hd_mm, hd95_mm, assd_mm: surface distances; NaN if one mask is empty or not computed.
        nsd: normalised surface distance at the tolerance used.
        empty_pred, empty_ref: which masks are empty.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    dice: float
    iou: float
    precision: float
    recall: float
    volume_pred_mm3: float
    volume_ref_mm3: float
    volume_diff_mm3: float
    hd_mm: float
    hd95_mm: float
    assd_mm: float
    nsd: float
    empty_pred: bool
    empty_ref: bool

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value."""
        return self.model_dump()


class _CaseClass(_CsvRow):
    """The first columns of both evaluation CSVs: the case and the class (value and name)."""

    case_id: str
    label: int
    class_name: str = Field(alias="class")


NSD_COLUMN = re.compile(r"nsd_(\d+(?:\.\d+)?)mm")
"""The NSD column of ``case_metrics.csv`` names its tolerance: ``nsd_1.0mm``."""


def nsd_column(tolerance_mm: float) -> str:
    """The name of the NSD column at a tolerance (mm).

    Example:
        >>> nsd_column(1), nsd_column(0.5)
        ('nsd_1.0mm', 'nsd_0.5mm')
    """
    return f"nsd_{float(tolerance_mm)}mm"


def canonical_column(name: str) -> str:
    """A CSV column as the schema field it fills (``nsd_1.0mm`` -> ``nsd``)."""
    return "nsd" if NSD_COLUMN.fullmatch(name) else name


class CaseMetricsRow(ClassMetrics, _CaseClass):
    """A row of ``case_metrics.csv``: one case and class, its :class:`ClassMetrics` and, for
    lesion classes, the lesion counts and scores (empty for other classes).

    In the file the NSD column carries its tolerance (``nsd_1.0mm``, :func:`nsd_column`); it is
    read back into ``nsd``.
    """

    @model_validator(mode="before")
    @classmethod
    def _nsd_with_tolerance(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {canonical_column(str(k)): v for k, v in data.items()}
        return data

    n_ref_lesions: int | None = None
    n_pred_lesions: int | None = None
    lesion_tp: int | None = None
    lesion_fp: int | None = None
    lesion_fn: int | None = None
    lesion_sensitivity: float | None = None
    lesion_precision: float | None = None
    lesion_f1: float | None = None
    lesion_dice: float | None = None
    lesion_pq: float | None = None

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV header: the case and class first, then the metrics."""
        first = ("case_id", "label", "class")
        return (*first, *(c for c in super().columns() if c not in first))

    def metrics(self) -> dict[str, float]:
        """The numeric metrics present (label, flags and not-applicable cells left out)."""
        skip = {"case_id", "label", "class_name", "empty_pred", "empty_ref"}
        values = self.model_dump(exclude=skip)
        return {k: float(v) for k, v in values.items() if v is not None}


class LesionRow(_CaseClass):
    """A row of ``lesions.csv``: one matched (TP), missed (FN) or false (FP) lesion."""

    status: LesionStatus
    ref_lesion_id: int | None = None
    pred_lesion_id: int | None = None
    ref_volume_mm3: float | None = None
    pred_volume_mm3: float | None = None
    iou: float | None = None
    dice: float | None = None
    score: float | None = None
    centroid_lps_mm_x: float | None = None
    centroid_lps_mm_y: float | None = None
    centroid_lps_mm_z: float | None = None
    centroid_voxel_i: float | None = None
    centroid_voxel_j: float | None = None
    centroid_voxel_k: float | None = None
    slice_first: int | None = None
    slice_last: int | None = None


LOCATION_COLUMNS = LesionRow.columns()[-8:]
"""Where a lesion is (the reference lesion for TP and FN, the predicted one for FP): centroid in
patient LPS mm and in 0-based voxel indices ``(i, j, k)``, first / last 0-based slice (the last
array axis); empty for a 2D case's slices or without the grid's affine."""


def csv_cell(value: Any) -> str:
    """A CSV cell: None empty, booleans ``true``/``false``, NaN ``nan``, floats 10 digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.10g}"
    return str(value)
