"""`medseg train` with Mask R-CNN workflows: 2D and 3D steps, safe checkpoints, resume, predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config.load import load_resolved
from medseg.io.nifti import read_nifti
from medseg.manifest.schema import load_manifest, save_manifest
from medseg.models.maskrcnn import MaskRCNN
from medseg.models.registry import build_model
from medseg.training.checkpoint import BEST, LAST
from tests.training.conftest import REPO

LOSSES = {"loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box", "loss_mask"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(tmp_path: Path, manifest: Path, run: Path, *overrides: str, resume: bool = False) -> str:
    workflow = tmp_path / "smoke_maskrcnn.yaml"
    shutil.copy(REPO / "workflows" / "smoke_maskrcnn.yaml", workflow)
    sets = [x for o in (f"manifest={manifest}", *overrides) for x in ("--set", o)]
    args = ["--no-progress", "train", str(workflow), "-o", str(run), "--device", "cpu", *sets]
    args += ["--resume"] if resume else []
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _rows(run: Path) -> list[dict]:
    lines = (run / "fold_0" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _load_weights_only(path: Path) -> MaskRCNN:
    raw = torch.load(path, weights_only=True)
    model = build_model(load_resolved(path.parents[1] / "resolved_workflow.yaml"))
    assert isinstance(model, MaskRCNN)
    model.load_state_dict(raw["model"])
    assert raw["lesion_labels"] and raw["resolved_workflow"]["model"]["name"] == "maskrcnn"
    return model


def test_maskrcnn_2d_trains_resumes_and_predicts(tmp_path: Path, oct_manifest: Path) -> None:
    run = tmp_path / "run"
    _train(tmp_path, oct_manifest, run, "train.epochs=1")
    _train(tmp_path, oct_manifest, run, "train.epochs=2", resume=True)
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) >= LOSSES and all(np.isfinite(r["train_loss"]) for r in rows)
    assert set(rows[-1]["val_lesion_f1"]) == {"IRF", "SRF"} and "val_score" in rows[-1]
    summary = json.loads((run / "fold_0" / "validation" / "summary.json").read_text())
    assert summary["selection_metric"] == "lesion_f1" and summary["epochs_run"] == 2
    resolved = load_resolved(run / "resolved_workflow.yaml")
    assert resolved.patch_size == [96, 64] and resolved.model.strides == []
    model = _load_weights_only(run / "fold_0" / LAST)
    assert model.config.spatial_dims == 2 and model.config.num_classes == 3
    _load_weights_only(run / "fold_0" / BEST)

    manifest = load_manifest(oct_manifest)
    case = manifest.cases[0]
    one_case = tmp_path / "one_case.json"
    save_manifest(
        manifest.model_copy(update={"cases": [case], "data_root": str(manifest.root)}), one_case
    )
    out = tmp_path / "pred"
    args = ["--no-progress", "predict", str(run), str(one_case), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    source = manifest.read_image(case)
    instances = read_nifti(out / f"{case.case_id}_instances.nii.gz")
    assert instances.shape == source.shape
    np.testing.assert_allclose(instances.affine, source.affine, atol=1e-5)
    info = json.loads((out / f"{case.case_id}.json").read_text())
    assert len(info["instances"]) == int(instances.array.max())
    report = json.loads((out / "run_report.json").read_text())
    assert report["cases"][0]["outputs"]["instances_json"] == f"{case.case_id}.json"


def test_maskrcnn_3d_trains_on_ct(tmp_path: Path, ct_manifest: Path) -> None:
    run = tmp_path / "run"
    output = _train(
        tmp_path,
        ct_manifest,
        run,
        "task.dims=3d",
        "train.patch_size=[32, 32, 32]",
        "train.epochs=1",
        "train.iterations_per_epoch=1",
    )
    assert "size divisible" in output
    assert set(_rows(run)[0]["val_lesion_f1"]) == {"lesion"}  # the organ is not detected
    model = _load_weights_only(run / "fold_0" / BEST)
    assert model.config.spatial_dims == 3 and model.config.num_classes == 2
