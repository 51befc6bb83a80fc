"""The per-patient report schema (pydantic, ``schema_version`` 2): ``<patient_id>/report.json``.

Version 2 (medseg 0.2): dates are ISO ``YYYY-MM-DD``; the agreement with the reference is
``StudyReport.evaluation`` (one :class:`ClassEvaluation` per class) instead of a flat ``metrics``
dict; ``intensity_unit``, ``OCTAnalysis.scan_direction`` and ``Provenance.notice`` added.

One :class:`PatientReport` per patient holds its studies (one per predicted case: a CT scan, an
OCT eye at one visit) ordered by study date, each with its lesions, class totals and, for OCT, the
fluid analysis on the ETDRS grid; then the longitudinal change table and the provenance.

Conventions: patient coordinates are DICOM LPS in mm; voxel indices are ``(i, j, k)`` of the
label map ``(X, Y, Z)`` = (column, row, slice / B-scan); volumes in mm³ (``_mm3``) and, for OCT,
nanolitres (``_nl``, 1 nL = 0.001 mm³); thicknesses in µm (``_um``). Measurements that do not apply
or could not be made are ``null``, never 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medseg.artifacts import ReportStatus

REPORT_SCHEMA_VERSION: Literal[2] = 2
MEASUREMENT_VERSION = 1
"""Version of the measurement definitions below; bumped whenever a number would change."""

Vec3 = tuple[float, float, float]
Idx3 = tuple[int, int, int]
FoveaMethod = Literal["retina_label", "ilm_surface", "scan_centre", "given", "vendor"]
StudyStatus = ReportStatus


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LesionRecord(_Model):
    """One lesion: a connected component of one class, or one instance of an instance map."""

    lesion_id: int = Field(ge=1, description="1-based, unique within the study, by class then size")
    label: int = Field(description="class value in the label map")
    label_name: str
    instance_id: int | None = Field(default=None, description="id in the instance map, when given")
    score: float | None = Field(default=None, description="detection score from the instance JSON")
    n_voxels: int = Field(ge=1)
    volume_mm3: float = Field(ge=0)
    volume_nl: float | None = Field(default=None, description="OCT only; 1 nL = 0.001 mm³")
    longest_diameter_mm: float = Field(
        ge=0, description="max distance between voxel centres of the lesion (3D)"
    )
    inplane_long_mm: float = Field(ge=0, description="RECIST long axis in the slice plane")
    inplane_short_mm: float = Field(ge=0, description="longest chord perpendicular to it")
    inplane_slice: int = Field(description="slice / B-scan index k where the long axis was found")
    long_axis_voxel: tuple[Vec3, Vec3] = Field(description="end points (i, j, k) of the long axis")
    short_axis_voxel: tuple[Vec3, Vec3] = Field(description="end points of the short axis")
    centroid_lps_mm: Vec3
    centroid_voxel: Vec3
    bbox_voxel_min: Idx3
    bbox_voxel_max: Idx3 = Field(description="inclusive")
    bbox_lps_min_mm: Vec3 = Field(description="axis-aligned box of the voxel centres in LPS")
    bbox_lps_max_mm: Vec3
    slice_first: int = Field(description="first slice / B-scan index k holding the lesion")
    slice_last: int
    mean_intensity: float | None = Field(
        default=None, description="image values inside, when given"
    )
    max_intensity: float | None = None
    etdrs_subfield: str | None = Field(
        default=None, description="OCT: subfield holding the centroid"
    )


class ClassTotal(_Model):
    """Lesion count and total volume of one class in one study."""

    label: int
    label_name: str
    count: int = Field(ge=0)
    volume_mm3: float = Field(ge=0)
    volume_nl: float | None = None


class Fovea(_Model):
    """Where the ETDRS grid is centred and how that point was found."""

    method: FoveaMethod
    lps_mm: Vec3 = Field(description="ILM point above the foveal centre (LPS mm)")
    voxel: Vec3
    detail: str = ""


class BscanArea(_Model):
    """Fluid cross-section area in one B-scan, per fluid class name (mm²)."""

    bscan: int
    areas_mm2: dict[str, float]


class Subfield(_Model):
    """One ETDRS subfield: fluid per class, thickness, and how much of it the scan covers."""

    name: str = Field(description="central | inner_superior | ... | outer_temporal")
    ring: Literal["central", "inner", "outer"]
    sector: Literal["central", "superior", "nasal", "inferior", "temporal"]
    area_mm2: float
    coverage: float = Field(ge=0, le=1, description="fraction of the subfield inside the scan")
    fluid_nl: dict[str, float]
    thickness_um: float | None = Field(
        default=None, description="mean ILM-RPE thickness (retina label)"
    )


FundusSide = Literal["superior", "inferior", "nasal", "temporal"]


class ScanDirection(_Model):
    """Where a macular volume's B-scans and A-scans run on the fundus (indices are 0-based)."""

    bscan_first: FundusSide = Field(description="side of B-scan 0")
    bscan_last: FundusSide = Field(description="side of the last B-scan")
    ascan_first: FundusSide = Field(description="side of the first A-scan of each B-scan")
    ascan_last: FundusSide


class OCTAnalysis(_Model):
    """Macular fluid analysis of one OCT volume."""

    laterality: Literal["OD", "OS"]
    laterality_source: Literal["metadata", "position", "assumed"]
    fovea: Fovea
    fovea_detected: Fovea | None = Field(
        default=None,
        description="medseg's own fovea when the grid is centred on the scanner's stored fovea",
    )
    bscan_spacing_mm: float = Field(description="distance between B-scan planes")
    bscan_areas: list[BscanArea]
    volumes_nl: dict[str, float] = Field(description="total fluid volume per class")
    etdrs: list[Subfield]
    fluid_outside_grid_nl: dict[str, float] = Field(description="fluid beyond the 6 mm circle")
    central_subfield_thickness_um: float | None = None
    scan_direction: ScanDirection | None = Field(
        default=None, description="how B-scans and A-scans are laid on the fundus"
    )


class ClassEvaluation(_Model):
    """Agreement of one class of a study with the reference (from ``medseg evaluate``).

    ``None`` where a value is not defined (e.g. HD95 when one mask is empty) or does not apply
    (lesion counts of a class that is not a lesion class).
    """

    label: int
    label_name: str
    dice: float | None = None
    hd95_mm: float | None = None
    empty_pred: bool | None = None
    empty_ref: bool | None = None
    lesion_tp: int | None = None
    lesion_fp: int | None = None
    lesion_fn: int | None = None
    lesion_f1: float | None = None


class StudyReport(_Model):
    """One predicted case of the patient (one scan, or one eye at one visit)."""

    case_id: str
    study_date: str | None = Field(default=None, description="ISO date YYYY-MM-DD when known")
    laterality: Literal["OD", "OS"] | None = None
    modality: str | None = None
    scanner: str | None = Field(
        default=None, description="manufacturer and model, from the image header or vendor file"
    )
    status: StudyStatus = "done"
    error: str | None = None
    prediction_file: str | None = None
    shape: Idx3 | None = None
    spacing_mm: Vec3 | None = None
    image_used: bool = False
    intensity_unit: str | None = Field(
        default=None, description="unit of the lesion intensities: HU for CT, else null (a.u.)"
    )
    lesions: list[LesionRecord] = Field(default_factory=list)
    totals: list[ClassTotal] = Field(default_factory=list)
    oct: OCTAnalysis | None = None
    evaluation: list[ClassEvaluation] = Field(
        default_factory=list, description="per class agreement with the reference (--eval)"
    )
    warnings: list[str] = Field(default_factory=list)


class ChangeRow(_Model):
    """One class at one study of one series (eye), compared with the previous and first study."""

    series: str = Field(description="OD / OS for OCT eyes, '' otherwise")
    case_id: str
    study_date: str | None
    label_name: str
    count: int
    volume_mm3: float
    count_change_prev: int | None = None
    volume_change_prev_mm3: float | None = None
    volume_change_prev_pct: float | None = Field(
        default=None, description="null when previous was 0"
    )
    count_change_baseline: int | None = None
    volume_change_baseline_mm3: float | None = None
    volume_change_baseline_pct: float | None = None


class Checkpoint(BaseModel):
    """A checkpoint the predictions came from (as listed in ``run_report.json``)."""

    model_config = ConfigDict(extra="allow")

    path: str | None = None
    sha256: str | None = None
    fold: int | None = None


class Provenance(_Model):
    """Where the numbers came from: the prediction run and this report."""

    report_created: str = Field(description="ISO time this report was made")
    report_medseg_version: str
    measurement_version: int = MEASUREMENT_VERSION
    prediction_dir: str
    prediction_created: str | None = None
    prediction_medseg_version: str | None = None
    model: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    evaluation_dir: str | None = None
    notice: str | None = Field(
        default=None, description="shown at the top of every report, e.g. that it is a smoke run"
    )


class PersonalData(_Model):
    """Identifying data copied from DICOM headers only with ``--include-phi``."""

    patient_name: str | None = None
    birth_date: str | None = None


class PatientReport(_Model):
    """Everything reported for one patient; written as ``<patient_id>/report.json``."""

    schema_version: Literal[2] = REPORT_SCHEMA_VERSION
    patient_id: str = Field(description="pseudonymous id from the run report or manifest")
    personal_data: PersonalData | None = None
    labels: dict[str, str]
    lesion_labels: list[int]
    studies: list[StudyReport]
    changes: list[ChangeRow] = Field(default_factory=list)
    provenance: Provenance
    warnings: list[str] = Field(default_factory=list)
