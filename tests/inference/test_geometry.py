"""Predictions sit on their source in world coordinates: NIfTI affine, DICOM SEG frames, truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from nibabel.nicom import dicomwrappers

from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.volume import Volume
from medseg.synth.truth import Truth

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _run(predictor, inputs: list[Path], out: Path, *, dicom_seg: bool = True) -> dict[str, object]:
    results = list(
        predict_cases(predictor, cases_from_inputs(inputs), out, BatchOptions(dicom_seg=dicom_seg))
    )
    assert all(r.status == "done" for r in results), [r.error for r in results]
    return {r.case_id: r for r in results}


def _inside(volume: Volume, lps: tuple[float, float, float]) -> int:
    return int(volume.array[tuple(np.rint(volume.lps_to_voxel(lps)).astype(int))])


def test_ct_series_prediction_and_dicom_seg(
    tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    root = encoded("ct")
    predictor = oracle_predictor(
        "ct", "preprocess.target_spacing=[2.6, 2.6, 3.9]"
    )  # resample and back
    _run(predictor, [root / "images"], tmp_path)
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        series = root / "images" / case.case_id
        files = sorted(
            series.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
        )
        pred = read_nifti(tmp_path / f"{case.case_id}.nii.gz")
        # nibabel's affine of the source (row, column, slice) vs ours (column, row, slice), in LPS
        wrapper = dicomwrappers.wrapper_from_file(str(files[0]))
        ours = LPS @ pred.affine
        np.testing.assert_allclose(ours[:3, [1, 0]], wrapper.affine[:3, :2], atol=1e-5)
        np.testing.assert_allclose(ours[:3, 3], wrapper.affine[:3, 3], atol=1e-4)
        np.testing.assert_allclose(np.abs(ours[:3, 2]), np.abs(wrapper.affine[:3, 2]), atol=1e-4)
        assert pred.shape == (int(wrapper.image_shape[1]), int(wrapper.image_shape[0]), len(files))
        # the prediction reproduces the truth on the source grid (edges move with resampling)
        label = read_nifti(root / case.label)
        for value in (1, 2):
            p, r = pred.array == value, label.array == value
            assert 2 * (p & r).sum() / (p.sum() + r.sum()) > 0.85
        seg = hd.seg.segread(tmp_path / f"{case.case_id}.seg.dcm")
        assert seg.SegmentSequence[1].SegmentLabel == "lesion"
        uids = {
            str(r.ReferencedSOPInstanceUID)
            for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        }
        assert uids == {str(pydicom.dcmread(f).SOPInstanceUID) for f in files}
        for lesion in case.lesions:
            i, j, k = np.rint(pred.lps_to_voxel(lesion.center_lps_mm)).astype(int)
            uid = str(pydicom.dcmread(files[k]).SOPInstanceUID)
            frame = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[uid], segment_numbers=[2]
            )
            assert frame[0, j, i, 0] == 1  # (row, column) of the truth centre is lesion in the SEG
            assert _inside(pred, lesion.center_lps_mm) == 2


def test_oct_dicom_prediction_and_dicom_seg(
    tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    root = encoded("oct")
    # label-encoded images have no retina band for the foreground heuristic: slide everywhere
    predictor = oracle_predictor(
        "oct",
        "preprocess.target_spacing=[0.05, 0.025, 0.5]",
        "infer.crop_foreground=false",
        "infer.skip_empty_windows=false",
    )
    _run(predictor, [root / "images"], tmp_path)
    for case in Truth.load(root / "truth.json").cases:
        source = root / "images" / case.case_id / "oct.dcm"
        image = sitk.ReadImage(str(source))
        pred = read_nifti(tmp_path / f"{case.case_id}.nii.gz")
        sitk_lps = np.eye(4)
        sitk_lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(
            image.GetSpacing()
        )
        sitk_lps[:3, 3] = image.GetOrigin()
        np.testing.assert_allclose(LPS @ pred.affine, sitk_lps, atol=1e-5)
        label = read_nifti(root / case.label)
        agreement = float((pred.array == label.array).mean())
        assert agreement > 0.995  # resampling to 0.05 x 0.025 mm and back moves only edge voxels
        seg = hd.seg.segread(tmp_path / f"{case.case_id}.seg.dcm")
        sop = str(pydicom.dcmread(source).SOPInstanceUID)
        for lesion in case.lesions:
            i, j, k = np.rint(pred.lps_to_voxel(lesion.center_lps_mm)).astype(int)
            assert _inside(pred, lesion.center_lps_mm) == lesion.label
            frame = seg.get_pixels_by_source_frame(
                source_sop_instance_uid=sop,
                source_frame_numbers=[k + 1],
                segment_numbers=[lesion.label],
            )
            assert frame[0, j, i, 0] == 1


@pytest.mark.parametrize("permutation", [(1, 0, 2), (2, 1, 0)])
def test_non_ras_nifti_keeps_its_affine(
    tmp_path: Path,
    encoded: Callable[[str], Path],
    oracle_predictor: Callable,
    permutation: tuple[int, int, int],
) -> None:
    root = encoded("ct")
    predictor = oracle_predictor("ct")  # native spacing: the label map must come back exactly
    case = Truth.load(root / "truth.json").cases[0]
    image = read_nifti(root / "nifti" / f"{case.case_id}.nii.gz")
    # flip the first axis and permute axes: an LPI/ASL-like layout with the same world content
    flipped = image.array[::-1]
    affine = image.affine @ np.array(
        [[-1, 0, 0, image.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float
    )
    array = np.transpose(flipped, permutation)
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[list(permutation)].T
    odd = Volume(np.ascontiguousarray(array), affine @ perm)
    assert odd.orientation != "RAS"
    path = write_nifti(odd, tmp_path / "odd.nii.gz")
    _run(predictor, [path], tmp_path / "out", dicom_seg=False)
    pred = nib.load(tmp_path / "out" / "odd.nii.gz")
    np.testing.assert_allclose(pred.affine, odd.affine, atol=1e-5)
    assert pred.shape == odd.shape
    result = read_nifti(tmp_path / "out" / "odd.nii.gz")
    np.testing.assert_array_equal(
        result.array, np.transpose(read_nifti(root / case.label).array[::-1], permutation)
    )
    for lesion in case.lesions:
        assert _inside(result, lesion.center_lps_mm) == 2
