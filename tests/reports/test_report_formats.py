"""``medseg report`` on other tools' label maps, with images in nnU-Net's layout."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from medseg.cli import app
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.read import read_volume
from tests.helpers import ct_series, write_highdicom_seg, write_slicer_seg

RUN_REPORT = {"labels": {"0": "background", "1": "organ", "2": "lesion"}, "lesion_labels": [2]}


def _report(pred: Path, images: Path, out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["--no-progress", "report", str(pred), "-o", str(out), "--images", str(images)]
    )
    assert result.exit_code == 0, result.output
    reports = {}
    for case in ("SYNCT0000", "SYNCT0001"):
        data = json.loads((out / case / "report.json").read_text())
        (study,) = data["studies"]
        assert study["image_used"], study  # found as imagesTs/<case>_0000.nii.gz
        assert not [w for w in study["warnings"] if "source image" in w], study["warnings"]
        reports[case] = study
    return reports


def test_report_reads_seg_and_seg_nrrd_on_nnunet_images(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    root = synth_dir("ct", "dicom")
    images = tmp_path / "Dataset001_CT"
    (images / "imagesTs").mkdir(parents=True)
    nifti, tools = tmp_path / "nifti", tmp_path / "tools"
    nifti.mkdir()
    tools.mkdir()
    for index, case in enumerate(("SYNCT0000", "SYNCT0001")):
        write_nifti(
            read_volume(ct_series(root, index)), images / "imagesTs" / f"{case}_0000.nii.gz"
        )
        shutil.copy(root / "labels" / f"{case}.nii.gz", nifti)
    label0 = read_nifti(root / "labels" / "SYNCT0000.nii.gz").array
    write_highdicom_seg(
        ct_series(root, 0), label0, {"lesion": 2, "organ": 1}, tools / "SYNCT0000.dcm"
    )
    label1 = read_nifti(root / "labels" / "SYNCT0001.nii.gz")
    segments = {"organ": label1.array >= 1, "lesion": label1.array == 2}
    write_slicer_seg(label1.affine, segments, tools / "SYNCT0001.seg.nrrd")
    for folder in (nifti, tools):
        (folder / "run_report.json").write_text(json.dumps(RUN_REPORT))
    expected = _report(nifti, images, tmp_path / "r1")
    got = _report(tools, images, tmp_path / "r2")
    for case, study in expected.items():
        assert study["lesions"], case
        assert got[case]["lesions"] == study["lesions"]
        assert got[case]["totals"] == study["totals"]
        assert got[case]["prediction_file"] != study["prediction_file"]
