"""`medseg predict` with a Mask R-CNN run writes instance outputs on the source grid, and
`medseg evaluate` scores them as scored lesions (lesion F1 and FROC)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medseg.cli import app
from medseg.inference.predictor import Predictor
from medseg.io.nifti import read_nifti
from medseg.manifest.schema import load_manifest
from tests.helpers import validate_evaluation_folder, validate_prediction_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_predict_writes_instances_and_evaluate_scores_them(
    tmp_path: Path,
    encoded,
    oracle_instance_predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = encoded("ct")
    monkeypatch.setattr(
        Predictor, "from_run", classmethod(lambda cls, *a, **k: oracle_instance_predictor)
    )
    out, run = tmp_path / "pred", tmp_path / "run"
    run.mkdir()
    result = CliRunner().invoke(
        app, ["--no-progress", "predict", str(run), str(root / "images"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(root / "manifest.json")
    report = validate_prediction_folder(out)
    assert {c.case_id for c in report.cases} == {c.case_id for c in manifest.cases}
    assert {c.status for c in report.cases} == {"done"} and report.settings["instances"]
    for case in manifest.cases:
        source = manifest.read_image(case)
        labels = read_nifti(out / f"{case.case_id}.nii.gz")
        instances = read_nifti(out / f"{case.case_id}_instances.nii.gz")
        for predicted in (labels, instances):
            assert predicted.shape == source.shape
            np.testing.assert_allclose(predicted.affine, source.affine, atol=1e-4)
        ids = instances.array.astype(int)
        records = json.loads((out / f"{case.case_id}.json").read_text())["instances"]
        assert [r["instance_id"] for r in records] == list(range(1, ids.max() + 1))
        reference = manifest.read_label(case).array == 2
        assert len(records) == ndimage.label(reference, structure=np.ones((3, 3, 3)))[1] > 0
        for record, bounds in zip(records, ndimage.find_objects(ids), strict=True):
            assert record["box_voxel"] == [s.start for s in bounds] + [s.stop for s in bounds]
            assert record["label"] == 2 and record["label_name"] == "lesion"
            assert record["n_voxels"] == int((ids == record["instance_id"]).sum())
            corner = source.voxel_to_lps(np.asarray(record["box_voxel"][:3], dtype=float) - 0.5)
            box = np.asarray(record["box_lps_mm"])
            assert np.all(box[:3] - 1e-3 <= corner) and np.all(corner <= box[3:] + 1e-3)
        np.testing.assert_array_equal(labels.array == 2, ids > 0)
        np.testing.assert_array_equal(ids > 0, reference)  # the oracle finds every lesion voxel

    evaluation = tmp_path / "eval"
    args = ["--no-progress", "evaluate", str(out), "--ref", str(root / "manifest.json")]
    result = CliRunner().invoke(app, [*args, "-o", str(evaluation), "--match-iou", "0.3"])
    assert result.exit_code == 0, result.output
    case_rows, lesion_rows = validate_evaluation_folder(evaluation)
    assert {r.case_id for r in case_rows} == {c.case_id for c in manifest.cases}
    assert {r.status for r in lesion_rows} == {"TP"} and all(r.score for r in lesion_rows)
    lesions = json.loads((evaluation / "summary.json").read_text())["classes"]["2"]["lesions"]
    assert lesions["f1"] == 1.0 and lesions["fp"] == 0
    assert lesions["froc"] is not None and lesions["froc"]["score"] > 0
