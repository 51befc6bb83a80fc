"""lesions.csv says where every matched, missed and false lesion is (patient LPS and slices)."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.evaluation.folder import evaluate_folder
from medseg.evaluation.locations import lesion_locations
from medseg.io.nifti import read_nifti, write_nifti
from medseg.synth.truth import Truth


def test_locations_of_a_crop_are_on_the_case_grid() -> None:
    lesions = np.zeros((6, 5, 8), np.int32)
    lesions[1:3, 0:2, 3:6] = 4
    lesions[5, 4, 7] = 9
    found = lesion_locations(lesions, offset=(10, 20, 30))
    assert found[4].centroid_voxel == (11.5, 20.5, 34.0)
    assert (found[4].slice_first, found[4].slice_last) == (33, 35)
    assert (found[9].slice_first, found[9].slice_last) == (37, 37)
    flat = lesion_locations(np.array([[0, 2], [2, 0]]))
    assert flat[2].centroid_voxel == (0.5, 0.5) and flat[2].slice_first is None


def test_false_and_missed_lesions_have_coordinates(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "nifti")
    truth = Truth.load(root / "truth.json")
    case, other = truth.cases[:2]
    ref = read_nifti(root / case.label)
    pred = np.asarray(ref.array).copy()
    missed = case.lesions[0]
    pred[pred == 2] = 0  # the reference lesion is missed (FN)
    pred[2:5, 2:5, 1:3] = 2  # a false lesion in a corner (FP)
    (tmp_path / "pred").mkdir()
    write_nifti(ref.with_array(pred), tmp_path / "pred" / f"{case.case_id}.nii.gz")
    shutil.copy(root / other.label, tmp_path / "pred" / f"{other.case_id}.nii.gz")  # found (TP)
    list(evaluate_folder(tmp_path / "pred", root / "labels", tmp_path / "eval", lesion_labels=[2]))
    with (tmp_path / "eval" / "lesions.csv").open() as handle:
        rows = {r["status"]: r for r in csv.DictReader(handle)}
    assert {"TP", "FN", "FP"} <= set(rows)
    fn = rows["FN"]
    lps = [float(fn[f"centroid_lps_mm_{a}"]) for a in "xyz"]
    assert lps == pytest.approx(missed.center_lps_mm, abs=1e-3)  # where the truth put it
    assert int(fn["slice_first"]) <= round(missed.center_voxel[2]) <= int(fn["slice_last"])
    fp = rows["FP"]
    expected = ref.voxel_to_lps(np.array([3.0, 3.0, 1.5]))
    assert [float(fp[f"centroid_lps_mm_{a}"]) for a in "xyz"] == pytest.approx(expected)
    assert (fp["centroid_voxel_i"], fp["slice_first"], fp["slice_last"]) == ("3", "1", "2")
    assert all(rows[s]["centroid_lps_mm_x"] for s in ("TP", "FN", "FP"))
