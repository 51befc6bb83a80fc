"""A tiny synthetic CT cohort with perturbed "predictions" (written once per module)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.volume import Volume
from medseg.manifest.schema import Case, Manifest, save_manifest


@dataclass(frozen=True)
class Cohort:
    """Paths of a synthetic cohort and what was done to each prediction."""

    root: Path
    labels_dir: Path
    manifest: Path
    case_ids: list[str]


def _write_cohort(root: Path, patients: int = 4) -> Cohort:
    from medseg.synth.api import synth_ct

    truth = synth_ct(root / "ct", patients=patients, size="tiny", fmt="nifti", seed=5)
    cases = [
        Case(
            case_id=c.case_id,
            patient_id=c.case_id,
            images={"image": c.image},
            label=c.label,
            fold=0,
        )
        for c in truth.cases
    ]
    manifest = Manifest(
        name="synct",
        data_root=str(root / "ct"),
        labels={"0": "background", "1": "organ", "2": "lesion"},
        lesion_labels=[2],
        cases=cases,
    )
    path = save_manifest(manifest, root / "manifest.json")
    return Cohort(root, root / "ct" / "labels", path, [c.case_id for c in truth.cases])


def write_predictions(cohort: Cohort, out: Path, *, perturb: bool = True) -> Path:
    """Predictions: case 0 shifted 1 voxel, case 1 lesion dropped, case 2 on a shifted grid,
    case 3 missing, plus a prediction ``EXTRA`` without reference (when ``perturb``)."""
    out.mkdir(parents=True, exist_ok=True)
    for index, case_id in enumerate(cohort.case_ids):
        ref = read_nifti(cohort.labels_dir / f"{case_id}.nii.gz")
        array = np.asarray(ref.array).copy()
        affine = ref.affine.copy()
        if perturb and index == 0:
            array = np.roll(array, 1, axis=0)
        elif perturb and index == 1:
            array[array == 2] = 0
        elif perturb and index == 2:
            affine[0, 3] += 5.0
        elif perturb and index == 3:
            continue
        write_nifti(Volume(array, affine), out / f"{case_id}.nii.gz")
    if perturb:
        write_nifti(Volume(np.zeros((4, 4, 4), np.uint8), np.eye(4)), out / "EXTRA.nii.gz")
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return _write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def predictions(cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_predictions(cohort, tmp_path_factory.mktemp("pred"))


def write_run_report(pred_dir: Path, labels: dict[str, str]) -> None:
    (pred_dir / "run_report.json").write_text(json.dumps({"labels": labels}))
