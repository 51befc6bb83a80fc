"""Planning: every auto resolved, choices follow the fingerprint."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.config.plan import divisor, plan_workflow, target_spacing, topology
from medseg.config.run import plan_run
from medseg.config.schema import WorkflowConfig, find_auto
from medseg.manifest.build import build_manifest
from medseg.manifest.fingerprint import Fingerprint, IntensityStats
from medseg.manifest.schema import Manifest, save_manifest


def _stats(mean: float = 50.0) -> IntensityStats:
    return IntensityStats(
        mean=mean, std=20.0, median=mean, p00_5=-100.0, p99_5=250.0, min=-1000.0, max=3000.0
    )


def _fingerprint(
    spacings: list[tuple[float, float, float]],
    shapes: list[tuple[int, int, int]],
    modality: str = "CT",
) -> Fingerprint:
    import numpy as np

    return Fingerprint(
        manifest="m",
        n_cases=len(spacings),
        modality=modality,
        channels=["image"],
        median_spacing=tuple(np.median(spacings, axis=0)),
        median_shape=tuple(int(v) for v in np.median(shapes, axis=0)),
        spacings=spacings,
        shapes=shapes,
        foreground_intensity={"image": _stats()},
        image_intensity={"image": _stats(-500.0)},
        class_fraction={"0": 0.9, "1": 0.1},
        cases=[],
    )


def _manifest() -> Manifest:
    return Manifest(
        name="m", labels={"0": "background", "1": "organ", "2": "lesion"}, lesion_labels=[2]
    )


def test_anisotropic_spacing_gives_anisotropic_plan() -> None:
    spacings = [(0.8, 0.8, 5.0), (0.7, 0.7, 4.0), (0.8, 0.8, 1.5), (0.75, 0.75, 5.0)]
    shapes = [(512, 512, 60)] * 4
    fp = _fingerprint(spacings, shapes)
    spacing = target_spacing(fp)
    assert spacing[:2] == pytest.approx((0.775, 0.775))
    assert spacing[2] == pytest.approx(np.percentile([5.0, 4.0, 1.5, 5.0], 10))  # 10th percentile
    resolved = plan_workflow(WorkflowConfig(name="x", manifest="m.json"), fp, _manifest())
    assert find_auto(resolved.model_dump(exclude={"plan"})) == []
    kernels, strides = resolved.model.kernels, resolved.model.strides
    assert strides[1] == [2, 2, 1] and kernels[0] == [3, 3, 1]  # in-plane first
    assert any(s[2] == 2 for s in strides)  # the coarse axis is pooled once it has caught up
    assert all(p % d == 0 for p, d in zip(resolved.patch_size, divisor(strides)))
    assert resolved.preprocess.intensity.scheme == "ct"
    assert (
        resolved.preprocess.intensity.clip == (-100.0, 250.0)
        and resolved.preprocess.intensity.mean == 50.0
    )
    assert resolved.batch_size >= 2


def test_isotropic_spacing_gives_isotropic_plan() -> None:
    fp = _fingerprint([(1.0, 1.0, 1.0)] * 3, [(128, 128, 128)] * 3, modality="MR")
    resolved = plan_workflow(WorkflowConfig(name="x", manifest="m.json"), fp, _manifest())
    assert all(k == [3, 3, 3] for k in resolved.model.kernels)
    assert all(len(set(s)) == 1 for s in resolved.model.strides)
    assert resolved.preprocess.intensity.scheme == "zscore"
    assert resolved.preprocess.intensity.clip is None


def test_memory_budget_shrinks_patch_and_batch() -> None:
    fp = _fingerprint([(1.0, 1.0, 1.0)] * 3, [(256, 256, 256)] * 3)
    big = plan_workflow(WorkflowConfig(name="x", manifest="m.json"), fp, _manifest())
    small = plan_workflow(
        WorkflowConfig(name="x", manifest="m.json", train={"memory_budget_gb": 1}), fp, _manifest()
    )
    assert sum(small.patch_size) < sum(big.patch_size)


def test_topology_kernels_follow_spacing() -> None:
    kernels, strides = topology([0.01, 0.004, 0.12], [256, 256, 1], 5)
    assert kernels[0] == [1, 3, 1] and strides[1] == [1, 2, 1]


def test_plan_on_synthetic_oct_is_2d_along_bscans(
    tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    root = synth_dir("oct", "dicom", patients=3)
    manifest_path = tmp_path / "oct.json"
    save_manifest(
        build_manifest(
            root / "images", manifest_path, labels_dir=root / "labels", n_folds=2
        ).manifest,
        manifest_path,
    )
    workflow = tmp_path / "wf.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "workflows" / "smoke.yaml", workflow)
    planned = plan_run(workflow, overrides=[f"manifest={manifest_path}"], run_dir=tmp_path / "run")
    r = planned.resolved
    assert r.slice_axis == 2 and r.plan.modality == "OPT" and r.preprocess.intensity.scheme == "oct"
    assert r.train.augmentation.flip_axes == [0]  # OCT: lateral flips only
    assert (tmp_path / "run" / "fingerprint.json").is_file() and (
        tmp_path / "run" / "resolved_workflow.yaml"
    ).is_file()
    again = plan_run(workflow, overrides=[f"manifest={manifest_path}"], run_dir=tmp_path / "run")
    assert again.reused and again.resolved == r
    changed = plan_run(
        workflow,
        overrides=[f"manifest={manifest_path}", "train.epochs=3"],
        run_dir=tmp_path / "run",
    )
    assert not changed.reused and changed.resolved.train.epochs == 3


def test_set_manifest_is_relative_to_the_current_folder(
    tmp_path: Path, synth_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--set manifest=REL`` is where the user typed it; ``manifest:`` in YAML beside the file."""
    from typer.testing import CliRunner

    from medseg.cli import app
    from medseg.config.load import load_workflow, manifest_path

    root = synth_dir("oct", "dicom", patients=3)
    here, elsewhere = tmp_path / "here", tmp_path / "workflows"
    (here / "data").mkdir(parents=True)
    elsewhere.mkdir()
    path = here / "data" / "oct.json"
    built = build_manifest(root / "images", path, labels_dir=root / "labels", n_folds=2)
    save_manifest(built.manifest, path)
    shutil.copy(Path(__file__).resolve().parents[2] / "workflows" / "smoke.yaml", elsewhere)
    (elsewhere / "data").mkdir()  # a decoy beside the workflow: must not be read
    (elsewhere / "data" / "oct.json").write_text("not a manifest")
    workflow = elsewhere / "smoke.yaml"
    monkeypatch.chdir(here)
    config = load_workflow(workflow, ["manifest=data/oct.json"])
    assert manifest_path(workflow, config) == path.resolve()
    assert manifest_path(workflow, load_workflow(workflow)) == (
        elsewhere / "../data_manifests/smoke.json"
    )
    result = CliRunner().invoke(
        app, ["plan", str(workflow), "--set", "manifest=data/oct.json", "-o", "run"]
    )
    assert result.exit_code == 0, result.output
    assert (here / "run" / "resolved_workflow.yaml").is_file()
    assert f"manifest: {path.resolve()}" in (here / "run" / "resolved_workflow.yaml").read_text()
