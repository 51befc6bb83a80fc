"""Fixtures for training tests: a tiny synthetic OCT cohort with a manifest and a workflow."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from medseg.manifest.build import build_manifest
from medseg.manifest.schema import save_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def oct_manifest(synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = synth_dir("oct", "dicom", patients=3)
    path = tmp_path_factory.mktemp("manifests") / "oct.json"
    save_manifest(
        build_manifest(root / "images", path, labels_dir=root / "labels", n_folds=2).manifest, path
    )
    return path


@pytest.fixture(scope="session")
def ct_manifest(synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = synth_dir("ct", "nifti", patients=3)
    path = tmp_path_factory.mktemp("manifests") / "ct.json"
    save_manifest(
        build_manifest(root / "images", path, labels_dir=root / "labels", n_folds=2).manifest, path
    )
    return path


@pytest.fixture
def smoke_workflow(tmp_path: Path) -> Path:
    path = tmp_path / "smoke.yaml"
    shutil.copy(REPO / "workflows" / "smoke.yaml", path)
    return path
