"""Two input channels (a 3D FLAIR + T1c-like pair in nnU-Net layout) through the CLI: manifest
import, train, predict (manifest, folder of channel files), evaluate and report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config.load import load_resolved
from medseg.io.nifti import read_nifti, write_nifti

runner = CliRunner()

WORKFLOW = """schema_version: 1
name: two_channels
manifest: {manifest}
task: {{dims: 3d}}
model: {{name: dynunet, base_filters: 4, max_filters: 16}}
train: {{epochs: 1, iterations_per_epoch: 2, batch_size: 2, patch_size: [16, 16, 16],
        num_workers: 0, augmentation: {{preset: none}}}}
infer: {{overlap: 0.25}}
"""


def invoke(*args: object) -> str:
    result = runner.invoke(app, ["--no-progress", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _nnunet_two_channels(source: Path, out: Path) -> Path:
    """``imagesTr/<case>_0000`` (the CT) and ``_0001`` (another contrast), ``labelsTr``."""
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for path in sorted((source / "images").glob("*.nii.gz")):
        case = path.name.removesuffix(".nii.gz")
        image = read_nifti(path)
        second = -0.5 * image.array.astype(np.float32) + rng.normal(0, 20, image.shape)
        write_nifti(image, out / "imagesTr" / f"{case}_0000.nii.gz")
        write_nifti(
            image.with_array(second.astype(np.float32)), out / "imagesTr" / f"{case}_0001.nii.gz"
        )
        write_nifti(
            read_nifti(source / "labels" / f"{case}.nii.gz"), out / "labelsTr" / f"{case}.nii.gz"
        )
    dataset = {
        "channel_names": {"0": "FLAIR", "1": "T1c"},
        "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    (out / "dataset.json").write_text(json.dumps(dataset))
    return out


@pytest.mark.slow
def test_two_channel_3d_cases_train_predict_and_report(
    tmp_path: Path, synth_dir: Callable[..., Path], one_torch_thread: None
) -> None:
    dataset = _nnunet_two_channels(synth_dir("ct", "nifti", patients=3), tmp_path / "nn")
    manifest = tmp_path / "two.json"
    invoke("manifest", "import", dataset, "-o", manifest, "--folds", "3")
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(WORKFLOW.format(manifest=manifest))
    run = tmp_path / "run"
    invoke("train", workflow, "-o", run)  # failed at once before: 'MetaTensor' has no 'update'
    resolved = load_resolved(run / "resolved_workflow.yaml")
    assert resolved.plan.channels == ["FLAIR", "T1c"] and resolved.plan.in_channels == 2
    invoke("predict", run, manifest, "-o", tmp_path / "pred_manifest")
    invoke("predict", run, dataset / "imagesTr", "-o", tmp_path / "pred_folder")
    cases = sorted(
        p.name.removesuffix("_0000.nii.gz") for p in (dataset / "imagesTr").glob("*_0000.nii.gz")
    )
    for out in ("pred_manifest", "pred_folder"):
        names = sorted(p.name for p in (tmp_path / out).glob("*.nii.gz"))
        assert names == [f"{c}.nii.gz" for c in cases]  # named without the channel suffix
    report = json.loads((tmp_path / "pred_folder" / "run_report.json").read_text())
    first = report["cases"][0]
    assert [Path(s).name for s in first["source"]] == [
        f"{cases[0]}_0000.nii.gz",
        f"{cases[0]}_0001.nii.gz",
    ]
    for case in cases:
        pred = read_nifti(tmp_path / "pred_folder" / f"{case}.nii.gz")
        source = read_nifti(dataset / "imagesTr" / f"{case}_0000.nii.gz")
        assert pred.shape == source.shape
        np.testing.assert_allclose(pred.affine, source.affine, atol=1e-6)
        same = read_nifti(tmp_path / "pred_manifest" / f"{case}.nii.gz")
        np.testing.assert_array_equal(same.array, pred.array)  # same channels either way
    invoke("evaluate", tmp_path / "pred_folder", "--ref", manifest, "-o", tmp_path / "eval")
    invoke(
        "report",
        tmp_path / "pred_folder",
        "-o",
        tmp_path / "reports",
        "--images",
        dataset / "imagesTr",
    )
    assert len((tmp_path / "eval" / "case_metrics.csv").read_text().splitlines()) == 1 + 2 * 3
    assert {p.name for p in (tmp_path / "reports").iterdir() if p.is_dir()} == set(cases)


def test_missing_channel_file_fails_only_that_case(
    tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    from medseg.inference.cases import cases_from_inputs

    dataset = _nnunet_two_channels(synth_dir("ct", "nifti", patients=2), tmp_path / "nn")
    lone = sorted((dataset / "imagesTr").glob("*_0001.nii.gz"))[0]
    lone.unlink()
    cases = cases_from_inputs([dataset / "imagesTr"], channels=["FLAIR", "T1c"])
    errors = {c.case_id: c.error for c in cases}
    broken = lone.name.removesuffix("_0001.nii.gz")
    assert len(errors) == 2 and broken in errors
    assert errors[broken] is not None and "0000" in errors[broken]
    assert [e for k, e in errors.items() if k != broken] == [None]
