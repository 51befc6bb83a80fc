"""Export a manifest as an nnU-Net v2 dataset and import it back (and an MSD dataset.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.errors import ConfigError
from medseg.io.read import read_volume
from medseg.manifest.build import build_manifest
from medseg.manifest.msd import import_dataset
from medseg.manifest.schema import load_manifest, save_manifest


def test_nnunet_round_trip(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "dicom", patients=3)
    manifest_path = tmp_path / "ct.json"
    save_manifest(
        build_manifest(
            root / "images", manifest_path, labels_dir=root / "labels", n_folds=3
        ).manifest,
        manifest_path,
    )
    dataset = tmp_path / "Dataset001_CT"
    result = CliRunner().invoke(app, ["manifest", "export", str(manifest_path), "-o", str(dataset)])
    assert result.exit_code == 0, result.output
    spec = json.loads((dataset / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "organ": 1, "lesion": 2} and spec["numTraining"] == 3
    splits = json.loads((dataset / "splits_final.json").read_text())
    assert len(splits) == 3 and all(len(s["val"]) == 1 for s in splits)
    imported = import_dataset(dataset, tmp_path / "back.json", n_folds=3)
    save_manifest(imported, tmp_path / "back.json")
    back = load_manifest(tmp_path / "back.json")
    original = load_manifest(manifest_path)
    assert sorted(c.case_id for c in back.cases) == sorted(c.case_id for c in original.cases)
    for case in back.cases:  # same voxels on the same grid after DICOM -> NIfTI
        src = original.case(case.case_id)
        a, b = original.read_image(src), back.read_image(case)
        np.testing.assert_array_equal(a.array, b.array)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
        np.testing.assert_array_equal(original.read_label(src).array, back.read_label(case).array)


def test_msd_import(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "nifti")
    spec = {
        "name": "Task01_Test",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "organ", "2": "lesion"},
        "training": [{"image": "./images/SYNCT0000.nii.gz", "label": "./labels/SYNCT0000.nii.gz"}],
        "test": ["./images/SYNCT0001.nii.gz"],
    }
    (tmp_path / "task").mkdir()
    import shutil

    shutil.copytree(root / "images", tmp_path / "task" / "images")
    shutil.copytree(root / "labels", tmp_path / "task" / "labels")
    (tmp_path / "task" / "dataset.json").write_text(json.dumps(spec))
    manifest = import_dataset(tmp_path / "task", tmp_path / "m.json", n_folds=1)
    save_manifest(manifest, tmp_path / "m.json")
    back = load_manifest(tmp_path / "m.json")
    assert [(c.case_id, c.split) for c in back.cases] == [
        ("SYNCT0000", "train"),
        ("SYNCT0001", "test"),
    ]
    assert read_volume(back.cases[0].images["image"], root=back.root).shape == (40, 40, 20)
    spec["modality"] = {"0": "T1", "1": "T2"}
    (tmp_path / "task" / "dataset.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="4D files"):
        import_dataset(tmp_path / "task", tmp_path / "m.json")
