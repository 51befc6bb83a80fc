"""``medseg evaluate`` on other tools' label maps (DICOM SEG, .seg.nrrd, MHA) and nnU-Net names."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.read import write_volume
from tests.evaluation.conftest import write_run_report
from tests.helpers import ct_series, write_highdicom_seg, write_slicer_seg

NAMES = {"0": "background", "1": "organ", "2": "lesion"}


def _evaluate(pred: Path, ref: Path, out: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(
        app, ["--no-progress", "evaluate", str(pred), "--ref", str(ref), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with (out / "case_metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def other_tools(
    synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(NIfTI labels folder, the same labels as another tool's files: a SEG and a .seg.nrrd)."""
    root = synth_dir("ct", "dicom")
    out = tmp_path_factory.mktemp("other_tools")
    label0 = read_nifti(root / "labels" / "SYNCT0000.nii.gz")
    label1 = read_nifti(root / "labels" / "SYNCT0001.nii.gz")
    write_highdicom_seg(  # segments in another order than the label values, empty frames left out
        ct_series(root, 0), label0.array, {"lesion": 2, "organ": 1}, out / "SYNCT0000.dcm"
    )
    segments = {"organ": label1.array >= 1, "lesion": label1.array == 2}  # overlapping layers
    write_slicer_seg(label1.affine, segments, out / "SYNCT0001.seg.nrrd")
    return root / "labels", out


def test_references_from_slicer_and_dicom_seg(
    other_tools: tuple[Path, Path], tmp_path: Path
) -> None:
    labels, tools = other_tools
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(labels / "SYNCT0000.nii.gz", pred)
    write_volume(read_nifti(labels / "SYNCT0001.nii.gz"), pred / "SYNCT0001.mha")
    write_run_report(pred, NAMES)
    rows = _evaluate(pred, tools, tmp_path / "e")
    assert {(r["case_id"], r["class"]) for r in rows} == {
        (c, n) for c in ("SYNCT0000", "SYNCT0001") for n in ("organ", "lesion")
    }
    assert all(float(r["dice"]) == 1.0 and float(r["hd95_mm"]) == 0.0 for r in rows)


def test_predictions_as_seg_and_seg_nrrd(other_tools: tuple[Path, Path], tmp_path: Path) -> None:
    labels, tools = other_tools
    pred = tmp_path / "pred"
    shutil.copytree(tools, pred)
    write_run_report(pred, NAMES)
    ref = tmp_path / "ref"
    ref.mkdir()
    array = read_nifti(labels / "SYNCT0000.nii.gz")
    moved = array.with_array((array.array == 2).astype(np.uint8) * 2)  # reference: lesion only
    write_nifti(moved, ref / "SYNCT0000.nii.gz")
    shutil.copy(labels / "SYNCT0001.nii.gz", ref)
    rows = {(r["case_id"], r["class"]): r for r in _evaluate(pred, ref, tmp_path / "e")}
    assert float(rows["SYNCT0001", "organ"]["dice"]) == 1.0
    assert float(rows["SYNCT0001", "lesion"]["dice"]) == 1.0
    assert float(rows["SYNCT0000", "lesion"]["dice"]) == 1.0
    assert rows["SYNCT0000", "organ"]["empty_ref"] == "true"
    assert float(rows["SYNCT0000", "organ"]["dice"]) == 0.0


def test_nnunet_dataset_and_names_pair(synth_dir: Callable[..., Path], tmp_path: Path) -> None:
    labels = synth_dir("ct", "dicom") / "labels"
    dataset = tmp_path / "Dataset001_CT"
    (dataset / "labelsTr").mkdir(parents=True)
    spec = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2}}
    (dataset / "dataset.json").write_text(json.dumps({**spec, "file_ending": ".nii.gz"}))
    for case in ("SYNCT0000", "SYNCT0001"):
        shutil.copy(labels / f"{case}.nii.gz", dataset / "labelsTr" / f"{case}.nii.gz")
    pred = tmp_path / "pred"  # one named like its nnU-Net image, no run report
    pred.mkdir()
    shutil.copy(labels / "SYNCT0000.nii.gz", pred / "SYNCT0000.nii.gz")
    shutil.copy(labels / "SYNCT0001.nii.gz", pred / "SYNCT0001_0000.nii.gz")
    rows = _evaluate(pred, dataset, tmp_path / "e")
    assert sorted({r["case_id"] for r in rows}) == ["SYNCT0000", "SYNCT0001"]
    assert {r["class"] for r in rows} == {"organ", "lesion"}  # names from dataset.json
    assert all(float(r["dice"]) == 1.0 for r in rows)
    # nnU-Net's predict copies dataset.json into its output folder: names from there
    shutil.copy(dataset / "dataset.json", pred / "dataset.json")
    rows = _evaluate(pred, dataset / "labelsTr", tmp_path / "e2")
    assert {r["class"] for r in rows} == {"organ", "lesion"}
