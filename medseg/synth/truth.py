"""``truth.json``: what a synthetic generator put where (lesion centres in LPS mm, volumes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medseg.io.atomic import write_text_atomic
from medseg.types import PathLike, Spacing

TRUTH_SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LesionTruth(_Model):
    """One synthetic lesion or fluid pocket.

    ``center_lps_mm`` is the centroid of the lesion's voxels in patient coordinates (LPS mm) and
    always lies inside the lesion's label. ``volume_mm3`` is the voxel count of the written label
    times the voxel volume; ``analytic_volume_mm3`` is the continuous shape's volume where known.
    """

    lesion_id: int = Field(ge=1, description="1-based id, unique within the case")
    label: int = Field(ge=1, description="label value of the lesion's class in the label map")
    name: str
    center_lps_mm: tuple[float, float, float]
    center_voxel: tuple[float, float, float]
    volume_mm3: float = Field(ge=0)
    analytic_volume_mm3: float | None = None
    radii_mm: tuple[float, float, float] | None = None
    n_voxels: int = Field(ge=0)


class CaseTruth(_Model):
    """One written scan (one series / eye / visit) and its label map."""

    case_id: str
    image: str = Field(description="path of the image (file or DICOM folder), relative to root")
    label: str = Field(description="path of the NIfTI label map, relative to root")
    study_date: str
    laterality: Literal["OD", "OS"] | None = None
    shape: tuple[int, int, int]
    spacing_mm: Spacing
    fovea_lps_mm: tuple[float, float, float] | None = None
    lesions: list[LesionTruth]


class PatientTruth(_Model):
    patient_id: str
    cases: list[CaseTruth]


class Truth(_Model):
    """Everything a synthetic run wrote, for tests and benchmarks to check against."""

    schema_version: int = TRUTH_SCHEMA_VERSION
    kind: Literal["ct", "oct"]
    format: Literal["dicom", "nifti", "png"]
    seed: int
    size: str
    labels: dict[str, str]
    lesion_labels: list[int] = Field(description="label values whose components are lesions")
    patients: list[PatientTruth]

    @property
    def cases(self) -> list[CaseTruth]:
        """All cases of all patients, in order."""
        return [case for patient in self.patients for case in patient.cases]

    def save(self, path: PathLike) -> Path:
        """Write as JSON atomically."""
        return write_text_atomic(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: PathLike) -> Truth:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
