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
from medseg.manifest.msd import export_nnunet, import_dataset, nnunet_channel_names
from medseg.manifest.nnunet_splits import folds_from_splits
from medseg.manifest.schema import Case, Manifest, load_manifest, save_manifest


def _ct_manifest(tmp_path: Path, synth_dir: Callable[..., Path], folds: int = 3) -> Path:
    root = synth_dir("ct", "dicom", patients=3)
    manifest_path = tmp_path / "ct.json"
    save_manifest(
        build_manifest(
            root / "images", manifest_path, labels_dir=root / "labels", n_folds=folds
        ).manifest,
        manifest_path,
    )
    return manifest_path


def test_nnunet_round_trip_keeps_folds_and_voxels(
    tmp_path: Path, synth_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    manifest_path = _ct_manifest(tmp_path, synth_dir)
    dataset = tmp_path / "raw" / "Dataset001_CT"
    preprocessed = tmp_path / "preprocessed"
    result = CliRunner().invoke(
        app,
        [
            "manifest",
            "export",
            str(manifest_path),
            "-o",
            str(dataset),
            "--preprocessed",
            str(preprocessed),
        ],
    )
    assert result.exit_code == 0, result.output
    spec = json.loads((dataset / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "organ": 1, "lesion": 2} and spec["numTraining"] == 3
    assert spec["channel_names"] == {"0": "CT"}  # nnU-Net's CT normalisation, not z-score
    raw_splits = json.loads((dataset / "splits_final.json").read_text())
    assert raw_splits == json.loads(
        (preprocessed / "Dataset001_CT" / "splits_final.json").read_text()
    )
    assert len(raw_splits) == 3 and all(len(s["val"]) == 1 for s in raw_splits)
    original = load_manifest(manifest_path)
    for k, split in enumerate(raw_splits):
        assert split["val"] == [c.case_id for c in original.cases if c.fold == k]
    # the raw copy alone is enough (nnU-Net >= 2.8 copies it when planning) ...
    (preprocessed / "Dataset001_CT" / "splits_final.json").unlink()
    result = CliRunner().invoke(
        app, ["manifest", "import", str(dataset), "-o", str(tmp_path / "back.json")]
    )
    assert result.exit_code == 0, result.output
    assert "3 folds from" in result.output
    back = load_manifest(tmp_path / "back.json")
    assert back.n_folds == 3 and back.channels == ["CT"]
    assert {c.case_id: c.fold for c in back.cases} == {c.case_id: c.fold for c in original.cases}
    assert {c.modality for c in back.cases} == {"CT"}
    for case in back.cases:  # same voxels on the same grid after DICOM -> NIfTI
        src = original.case(case.case_id)
        a, b = original.read_image(src), back.read_image(case)
        np.testing.assert_array_equal(a.array, b.array)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
        np.testing.assert_array_equal(original.read_label(src).array, back.read_label(case).array)


def test_import_prefers_the_preprocessed_splits(
    tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    dataset = tmp_path / "Dataset002_CT"
    export_nnunet(load_manifest(_ct_manifest(tmp_path, synth_dir)), dataset)
    ids = sorted(c["val"][0] for c in json.loads((dataset / "splits_final.json").read_text()))
    custom = [{"train": ids[1:], "val": ids[:1]}, {"train": ids[:1], "val": ids[1:]}]
    pre = tmp_path / "pre"
    (pre / dataset.name).mkdir(parents=True)
    (pre / dataset.name / "splits_final.json").write_text(json.dumps(custom))
    result = import_dataset(dataset, tmp_path / "m.json", preprocessed_root=pre)
    assert result.splits_file == pre / dataset.name / "splits_final.json"
    assert result.manifest.n_folds == 2
    assert {c.case_id: c.fold for c in result.manifest.cases} == {
        ids[0]: 0,
        ids[1]: 1,
        ids[2]: 1,
    }


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ([{"train": ["A", "B"], "val": ["C"]}, {"train": ["A"], "val": ["C"]}], "validates in"),
        ([{"train": ["A"], "val": ["C"]}], "does not train on every case"),
        ([{"train": ["A", "B", "X"], "val": ["C"]}], "not labelled training cases"),
        ({"train": []}, "non-empty list"),
    ],
)
def test_bad_splits_are_clear_errors(tmp_path: Path, splits: object, message: str) -> None:
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps(splits))
    with pytest.raises(ConfigError, match=message):
        folds_from_splits(path, ["A", "B", "C"])


def test_import_without_splits_fits_the_folds_to_the_patients(
    tmp_path: Path, synth_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    dataset = tmp_path / "Dataset003_CT"
    export_nnunet(load_manifest(_ct_manifest(tmp_path, synth_dir)), dataset)
    (dataset / "splits_final.json").unlink()
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["manifest", "import", str(dataset), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 labelled patients: 3 folds (default 5)" in result.output
    back = load_manifest(out)
    assert back.n_folds == 3 and sorted(c.fold for c in back.cases) == [0, 1, 2]
    result = CliRunner().invoke(
        app, ["manifest", "import", str(dataset), "-o", str(out), "--folds", "5"]
    )
    assert result.exit_code == 2
    assert "5 folds need at least 5 labelled training patients, found 3" in result.output


def test_channel_names_for_nnunet() -> None:
    def manifest(channels: list[str], modality: str | None) -> Manifest:
        images = {ch: f"{ch}.nii.gz" for ch in channels}
        case = Case(case_id="a", patient_id="p", images=images, modality=modality)
        return Manifest(name="m", channels=channels, cases=[case])

    assert nnunet_channel_names(manifest(["image"], "CT")) == {"0": "CT"}
    assert nnunet_channel_names(manifest(["image"], "MR")) == {"0": "image"}
    assert nnunet_channel_names(manifest(["ct", "pet"], None)) == {"0": "CT", "1": "pet"}
    assert nnunet_channel_names(manifest(["FLAIR", "T1c"], "MR")) == {"0": "FLAIR", "1": "T1c"}


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
    result = import_dataset(tmp_path / "task", tmp_path / "m.json", n_folds=1)
    save_manifest(result.manifest, tmp_path / "m.json")
    back = load_manifest(tmp_path / "m.json")
    assert [(c.case_id, c.split) for c in back.cases] == [
        ("SYNCT0000", "train"),
        ("SYNCT0001", "test"),
    ]
    assert read_volume(back.cases[0].images["image"], root=back.root).shape == (40, 40, 20)
    assert back.cases[0].modality == "CT"  # MSD modality CT
    spec["modality"] = {"0": "T1", "1": "T2"}
    (tmp_path / "task" / "dataset.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="4D files"):
        import_dataset(tmp_path / "task", tmp_path / "m.json")
