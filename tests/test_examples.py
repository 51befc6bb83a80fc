"""``medseg synth examples`` and ``medseg run``: every shipped workflow runs as shipped from a fresh
checkout (the tracked files only, copied into a temporary folder)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.errors import ConfigError
from medseg.examples import EXAMPLES, STAMP, make_examples, manifests_used_by, write_scans
from medseg.io.read import read_volume
from medseg.manifest.schema import load_manifest

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of medseg (to list its tracked files)")
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


def fresh_checkout(dest: Path) -> Path:
    """What a clone of this working tree holds: tracked files plus new files git does not ignore
    (so generated manifests, runs and caches of the developer's checkout stay behind)."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():  # deleted but not yet staged files are listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, ["--no-progress", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_fresh_checkout_plans_every_workflow_and_runs_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    repo = fresh_checkout(tmp_path / "medseg")
    committed = sorted((repo / "data_manifests").glob("*.json"))
    for path in committed:  # committed manifests hold no path of the machine that wrote them
        assert not Path(load_manifest(path).data_root).is_absolute(), path
    assert (repo / "data_manifests" / "README.md").is_file()
    assert not any(p.stem in EXAMPLES for p in committed)
    monkeypatch.chdir(repo)
    _invoke("synth", "examples", "--size", "tiny", "--data-dir", str(tmp_path / "data"))
    workflows = sorted((repo / "workflows").glob("*.yaml"))
    assert len(workflows) >= 6
    for workflow in workflows:
        output = _invoke("plan", f"workflows/{workflow.name}")
        assert f"run folder: runs/{workflow.stem}" in output.replace("\n", "")
        assert (repo / "runs" / workflow.stem / "resolved_workflow.yaml").is_file()

    first = _invoke("run", "workflows/smoke.yaml")
    run = repo / "runs" / "smoke"
    manifest = load_manifest(repo / "data_manifests" / "smoke.json")
    test_cases = [c for c in manifest.cases if c.split == "test"]
    assert test_cases and "train     ran" in first
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    assert summary["cases"]["evaluated"] == len(test_cases)
    assert (run / "reports" / "index.html").is_file()
    for case in test_cases:  # predictions on the source grid
        source = manifest.read_image(case)
        pred = read_volume(run / "predictions" / f"{case.case_id}.nii.gz")
        assert pred.shape == source.shape and np.allclose(pred.affine, source.affine, atol=1e-4)
    again = _invoke("run", "workflows/smoke.yaml")
    for stage in ("plan", "train", "predict", "evaluate", "report"):
        assert f"{stage:9s} up to date" in again


def test_every_workflow_names_its_data_command_and_example() -> None:
    readme = (REPO / "data_manifests" / "README.md").read_text()
    used = manifests_used_by(REPO / "workflows")
    assert set(used) <= {f"{name}.json" for name in EXAMPLES}, "a workflow without example data"
    for manifest, workflows in used.items():
        for name in workflows:
            first = (REPO / "workflows" / name).read_text().splitlines()[0]
            assert first.startswith("# Trains ") and "`medseg synth examples`" in first, name
            rows = [line for line in readme.splitlines() if f"`workflows/{name}`" in line]
            assert len(rows) == 1 and f"`{manifest}" in rows[0], name
    for name in EXAMPLES:  # generated manifests hold absolute paths: never committed
        ignored = _git("check-ignore", "-q", f"data_manifests/{name}.json")
        assert ignored.returncode == 0, f"data_manifests/{name}.json is not git-ignored"


def test_examples_reuse_scans_and_refuse_foreign_folders(tmp_path: Path) -> None:
    data, manifests = tmp_path / "data", tmp_path / "manifests"
    (data / "smoke.partial-examples").mkdir(parents=True)  # left by an interrupted run
    (data / "smoke.partial-examples" / "junk").write_text("x")
    [first] = make_examples(data, manifests, names=["smoke"])
    assert not first.reused and first.test_cases >= 1 and first.cases > first.test_cases
    assert not (data / "smoke.partial-examples").exists()
    manifest = load_manifest(manifests / "smoke.json")
    assert Path(manifest.data_root) == (data / "smoke" / "images").resolve()
    assert (
        manifest.read_label(manifest.cases[0]).shape == manifest.read_image(manifest.cases[0]).shape
    )
    [second] = make_examples(data, manifests, names=["smoke"])
    assert (
        second.reused
        and (manifests / "smoke.json").read_text() == manifest.model_dump_json(indent=2) + "\n"
    )
    other = dataclasses.replace(EXAMPLES["smoke"], seed=1)
    assert not write_scans(other, data / "smoke")  # other settings: written again
    assert json.loads((data / "smoke" / STAMP).read_text())["seed"] == 1
    foreign = data / "ct_lesion"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="was not written by `medseg synth examples`"):
        make_examples(data, manifests, names=["ct_lesion"], size="tiny")
    assert (foreign / "mine.txt").read_text() == "keep"
    with pytest.raises(ConfigError, match="unknown example data set.*choose among smoke"):
        make_examples(data, manifests, names=["nope"])
