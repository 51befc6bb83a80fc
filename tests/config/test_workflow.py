"""Workflow YAML validation: one line per problem, with the YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config.load import apply_overrides, load_workflow
from medseg.config.schema import ResolvedWorkflow
from medseg.errors import ConfigError

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


def test_shipped_workflows_validate() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yaml")}
    assert {"smoke.yaml", "oct_fluid_unet2d.yaml", "ct_lesion_unet3d.yaml"} <= names
    for path in WORKFLOWS.glob("*.yaml"):
        assert load_workflow(path).name


def test_each_problem_is_one_line_with_its_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
name: t
manifest: m.json
task: {dims: 2d}
train: {epochz: 3, batch_size: two, optimizer: adam}
model: {kernel: 3}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_workflow(path)
    lines = str(info.value.message).splitlines()
    assert lines == [
        "wf.yaml: model.kernel: unknown key (did you mean 'kernels'?)",
        "wf.yaml: train.batch_size: Input should be a valid integer, unable to parse string as an integer (or 'auto') (got 'two')",
        "wf.yaml: train.optimizer: Input should be 'sgd' or 'adamw' (got 'adam')",
        "wf.yaml: train.epochz: unknown key (did you mean 'epochs'?)",
    ]


def test_cross_field_rules_and_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^wf.yaml: train.patch_size: expected 2 values for dims=2d, got 3$"
    ):
        load_workflow(
            _write(
                tmp_path,
                "name: t\nmanifest: m.json\ntask: {dims: 2d}\ntrain: {patch_size: [8, 8, 8]}\n",
            )
        )
    with pytest.raises(ConfigError, match="wf.yaml: manifest: required key is missing"):
        load_workflow(_write(tmp_path, "name: t\n"))
    with pytest.raises(ConfigError, match="invalid YAML at line 3"):
        load_workflow(_write(tmp_path, "name: t\nmanifest: [m\n"))


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nmanifest: m.json\n")
    config = load_workflow(
        path, ["train.patch_size=[32, 32, 16]", "train.epochs=7", "infer.tta=true"]
    )
    assert (
        config.train.patch_size == [32, 32, 16]
        and config.train.epochs == 7
        and config.infer.tta is True
    )
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(
        ConfigError, match="train.epochs: Input should be greater than or equal to 1"
    ):
        load_workflow(path, ["train.epochs=0"])


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: t\nmanifest: m.json\ntrain: {epochz: 1}\n")
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert "train.epochz: unknown key (did you mean 'epochs'?)" in result.output
    assert "Traceback" not in result.output


def test_resolved_workflow_rejects_auto() -> None:
    plan = {
        "fingerprint_sha256": "",
        "workflow_sha256": "",
        "manifest_sha256": "",
        "n_training_cases": 1,
        "modality": "CT",
        "in_channels": 1,
        "channels": ["image"],
        "labels": {"0": "background"},
        "lesion_labels": [],
        "median_spacing": [1, 1, 1],
        "median_shape": [8, 8, 8],
        "network_input": [8, 8, 8],
    }
    with pytest.raises(
        ValueError,
        match="unresolved auto values: task.dims, task.slice_axis, preprocess.target_spacing",
    ):
        ResolvedWorkflow.model_validate({"name": "x", "manifest": "m", "plan": plan})
