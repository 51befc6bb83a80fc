"""DICOM SEG on the true slices: with unevenly spaced or tilted source slices, every SEG frame
references its own source slice and holds the NIfTI label map sampled on that slice."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from tests.helpers import real_data_dir

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _shift_slices(folder: Path, shifts_mm: dict[int, tuple[float, float, float]]) -> None:
    """Move slices (index in position order) by an LPS offset; drop the rest beyond 10."""
    files = sorted(
        folder.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
    )
    for extra in files[10:]:
        extra.unlink()
    for index, shift in shifts_mm.items():
        ds = pydicom.dcmread(files[index])
        ds.ImagePositionPatient = [float(v) + d for v, d in zip(ds.ImagePositionPatient, shift)]
        ds.save_as(files[index], enforce_file_format=True)


def _nifti_on_slice(nifti: nib.Nifti1Image, ds: pydicom.Dataset) -> np.ndarray:
    """The NIfTI label map on one source slice: nearest voxel at each pixel centre (rows, cols)."""
    to_voxel = np.linalg.inv(LPS @ nifti.affine)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    r, c = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
    lps = (
        np.asarray(ds.ImagePositionPatient, dtype=float)
        + c[..., None] * iop[:3] * col_mm
        + r[..., None] * iop[3:] * row_mm
    )
    ijk = np.floor(lps @ to_voxel[:3, :3].T + to_voxel[:3, 3] + 0.5).astype(int)
    data = np.asarray(nifti.dataobj)
    assert (ijk >= 0).all() and (ijk < data.shape).all()
    return data[ijk[..., 0], ijk[..., 1], ijk[..., 2]]


CASES = {
    # the case: one of 10 slices shifted by 1 mm (3 mm spacing)
    "one_shifted": {4: (0.0, 0.0, 1.0)},
    # spacing drifts 1.4 -> 2.0 mm: source slices 4 and 5 fall nearest to NIfTI slices 3 and 4
    "drift": {i: (0.0, 0.0, -(1.6 * min(i, 5) + 1.0 * max(i - 5, 0))) for i in range(10)},
    # gantry tilt, evenly spaced: the NIfTI affine carries the shear, frames are its slices
    "tilt": {i: (0.0, i * 3.0 * np.tan(np.radians(12)), 0.0) for i in range(10)},
}


@pytest.mark.parametrize("name", list(CASES))
def test_seg_frames_on_source_slices(
    name: str, tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    root = encoded("ct")
    series = tmp_path / "scan" / "case"
    shutil.copytree(sorted((root / "images").iterdir())[0], series)
    _shift_slices(series, CASES[name])
    out = tmp_path / "out"
    (result,) = predict_cases(
        oracle_predictor("ct"), cases_from_inputs([series]), out, BatchOptions(dicom_seg=True)
    )
    assert result.status == "done", result.error
    nifti = nib.load(out / result.outputs["labels"])
    seg = hd.seg.segread(out / result.outputs["dicom_seg"])
    sources = [pydicom.dcmread(p) for p in sorted(series.glob("*.dcm"))]
    referenced = {
        str(r.ReferencedSOPInstanceUID)
        for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in sources}
    foreground = 0
    for ds in sources:
        expected = _nifti_on_slice(nifti, ds)
        frame = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[str(ds.SOPInstanceUID)], segment_numbers=[1, 2]
        )[0]
        got = frame[..., 0] * 1 + frame[..., 1] * 2
        assert int((got != expected).sum()) == 0, f"{(got != expected).sum()} voxels off"
        foreground += int((expected > 0).sum())
    assert foreground > 100  # the frames hold organ and lesion, not only background
    # where each source slice (in position order) sits along the NIfTI's slice axis
    to_voxel = np.linalg.inv(LPS @ nifti.affine)
    ordered = sorted(sources, key=lambda d: float(d.ImagePositionPatient[2]))
    k = np.array([(to_voxel @ [*map(float, d.ImagePositionPatient), 1])[2] for d in ordered])
    nearest = np.floor(k + 0.5).astype(int)
    report = json.loads((out / "run_report.json").read_text())["cases"][0]
    descrip = nifti.header["descrip"].item().decode()
    if name == "tilt":  # every source slice is a NIfTI slice
        assert report["notes"] == [] and descrip == ""
        np.testing.assert_allclose(k, np.arange(10), atol=1e-3)
        return
    # the NIfTI and the run report say what was done
    assert "slices unevenly spaced" in report["notes"][0]
    assert "DICOM SEG frames lie on the 10 source slices" in report["notes"][1]
    assert "10 uneven DICOM slices resampled" in descrip
    if name == "one_shifted":  # slice 4 is a third of a slice off its NIfTI slice
        assert nearest.tolist() == list(range(10)) and k[4] - 4 == pytest.approx(1 / 3, abs=1e-3)
    else:  # slice k of the source is not slice k of the NIfTI: frames were placed by position
        assert nearest.tolist() != list(range(10))


def _real_ct(name: str) -> Path:
    if name == "pydicom-CT5N":  # a real 5-slice CT series shipped with pydicom
        from pydicom.data import DATA_ROOT

        return Path(DATA_ROOT) / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
    root = real_data_dir("dicom-corpus")
    folder = None if root is None else root / "dcmqi" / "data" / "segmentations" / "ct-3slice"
    if folder is None or not folder.is_dir():
        pytest.skip("dcmqi test files not found: `python benchmarks/get_real_data.py dicom-corpus`")
    return folder


@pytest.mark.parametrize("name", ["pydicom-CT5N", "dcmqi-GE-CT"])
def test_predict_writes_a_valid_seg_on_a_real_ct(
    name: str, tmp_path: Path, oracle_predictor: Callable
) -> None:
    """``predict --dicom-seg`` end to end on real scanner CT (the GE series has an empty
    SpecificCharacterSet: issue 13 failed the case after writing its NIfTI)."""
    series = _real_ct(name)
    out = tmp_path / "out"
    # a 3-slice scan is thinner than the foreground pooling kernel (issue 13, item 1)
    overrides = ["infer.crop_foreground=false", "infer.skip_empty_windows=false"]
    (result,) = predict_cases(
        oracle_predictor("ct", *overrides),
        cases_from_inputs([series]),
        out,
        BatchOptions(dicom_seg=True),
    )
    assert result.status == "done" and result.missing == [], result.error
    assert set(result.outputs) == {"labels", "preview", "dicom_seg"}
    nifti = nib.load(out / result.outputs["labels"])
    seg_path = out / result.outputs["dicom_seg"]
    seg = hd.seg.segread(seg_path)
    for path in sorted(series.glob("*")):
        ds = pydicom.dcmread(path)
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[str(ds.SOPInstanceUID)], segment_numbers=[1, 2]
        )[0]
        got = frames[..., 0] * 1 + frames[..., 1] * 2
        np.testing.assert_array_equal(got, _nifti_on_slice(nifti, ds))
    if shutil.which("dciodvfy"):
        run = subprocess.run(["dciodvfy", str(seg_path)], capture_output=True, text=True)
        errors = [x for x in (run.stdout + run.stderr).splitlines() if x.startswith("Error")]
        assert errors == []
