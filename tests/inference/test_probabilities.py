"""``predict --save-probabilities``: float16 per-class probabilities on the source grid."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.artifacts import CaseResult
from medseg.cli import app
from medseg.errors import ConfigError
from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.inference.predictor import Predictor
from medseg.inference.probabilities import half_probabilities


def _check(npz_path: Path, labels_path: Path) -> np.ndarray:
    """Sums to 1 (1e-3), arg-max = the label map, affine and grid = the label map's."""
    labels = nib.load(labels_path)
    with np.load(npz_path) as data:
        probs = data["probabilities"]
        assert probs.dtype == np.float16
        assert probs.shape == (len(data["label_values"]), *labels.shape)
        np.testing.assert_allclose(data["affine"], labels.affine, atol=1e-6)
        assert list(data["label_values"]) == list(range(probs.shape[0]))
        names = list(data["label_names"])
    sums = probs.astype(np.float64).sum(axis=0)
    assert np.abs(sums - 1.0).max() <= 1e-3
    np.testing.assert_array_equal(np.argmax(probs, axis=0), np.asarray(labels.dataobj))
    assert names[0] == "background"
    return probs


def test_half_probabilities_sum_to_one_and_keep_the_arg_max() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((3, 40, 30, 20)).astype(np.float32)
    values[:, 0, 0, :] = 0.0  # no class at all: background
    values[1, 1] = values[2, 1]  # exact ties: the first class wins, as the label map's arg-max
    a = np.float32(0.5)
    values[:, 2, 0, 0] = [0.0, a, np.nextafter(a, np.float32(1))]  # tie only after float16 rounding
    half = half_probabilities(values)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(np.argmax(half, axis=0), np.argmax(values, axis=0))
    assert np.abs(half.astype(np.float64).sum(axis=0) - 1).max() <= 1e-3
    assert (half[0, 0, 0, :] == 1).all() and np.argmax(half[:, 2, 0, 0]) == 2


def _predict_ct(predictor: Predictor, root: Path, out: Path, n_cases: int) -> list[CaseResult]:
    """The first ``n_cases`` encoded CT scans (NIfTI) predicted with probabilities."""
    options = BatchOptions(preview=False, save_probabilities=True)
    cases = cases_from_inputs([root / "nifti"])[:n_cases]
    results = list(predict_cases(predictor, cases, out, options))
    assert all(r.status == "done" for r in results), [r.error for r in results]
    return results


def test_oracle_ct_probabilities_on_the_source_grid(
    tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    """Resampled to a coarser grid and back: soft borders, still the label map's arg-max."""
    predictor = oracle_predictor("ct", "preprocess.target_spacing=[2.6, 2.6, 3.9]")
    results = _predict_ct(predictor, encoded("ct"), tmp_path, n_cases=99)
    for result in results:
        assert result.outputs["probabilities"] == f"{result.case_id}_probabilities.npz"
        probs = _check(
            tmp_path / result.outputs["probabilities"], tmp_path / f"{result.case_id}.nii.gz"
        )
        soft = (probs.max(axis=0) < 0.99).sum()
        assert soft > 0  # interpolated borders: real probabilities, not one-hot labels
    report = json.loads((tmp_path / "run_report.json").read_text())
    assert report["settings"]["save_probabilities"] is True
    assert not list(tmp_path.glob(".probabilities-*"))  # staging removed


def test_post_processing_is_noted(
    tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    predictor = oracle_predictor("ct", "postprocess.min_volume_mm3=1000000")
    (result,) = _predict_ct(predictor, encoded("ct"), tmp_path, n_cases=1)
    assert any("post-processing changed" in n for n in result.notes), result.notes
    labels = np.asarray(nib.load(tmp_path / f"{result.case_id}.nii.gz").dataobj)
    with np.load(tmp_path / f"{result.case_id}_probabilities.npz") as data:
        before = np.argmax(data["probabilities"], axis=0)
    differ = before != labels
    assert differ.any() and (labels[differ] == 0).all()  # only removed components differ


def test_cli_save_probabilities_with_a_trained_run(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    scan = sorted((synth_dir("oct", "dicom", patients=3) / "images").rglob("*.dcm"))[0]
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["--no-progress", "predict", str(trained_run), str(scan), "-o", str(out),
         "--save-probabilities", "--no-preview"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "run_report.json").read_text())
    for case in report["cases"]:
        _check(out / case["outputs"]["probabilities"], out / case["outputs"]["labels"])


def test_mask_rcnn_runs_refuse_probabilities(oracle_instance_predictor) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="U-Net"):
        oracle_instance_predictor.check_probabilities()
