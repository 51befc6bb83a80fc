"""Synthetic OCT: DICOM Ophthalmic Tomography, NIfTI and PNG variants line up with their labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import OphthalmicTomographyImageStorage

from medseg.synth.truth import Truth


def _opt_affine_lps(ds: pydicom.Dataset) -> np.ndarray:
    """Voxel (col, row, frame) -> LPS affine from the functional groups, computed independently."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    row_sp, col_sp = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    positions = np.array(
        [
            f.PlanePositionSequence[0].ImagePositionPatient
            for f in ds.PerFrameFunctionalGroupsSequence
        ],
        float,
    )
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1] = iop[:3] * col_sp, iop[3:] * row_sp
    affine[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    affine[:3, 3] = positions[0]
    return affine


def _fluid_darker_than_surroundings(image: np.ndarray, label: np.ndarray) -> bool:
    """Fluid voxels are darker than the tissue ring around them (hyporeflective pockets)."""
    from scipy import ndimage

    fluid = label > 0
    ring = ndimage.binary_dilation(fluid, iterations=2) & ~fluid
    return bool(image[fluid].mean() < image[ring].mean() - 20)


def test_oct_dicom_pydicom_geometry(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("oct", "dicom")
    truth = Truth.load(root / "truth.json")
    assert any(case.lesions for case in truth.cases)
    for case in truth.cases:
        ds = pydicom.dcmread(root / case.image)
        assert ds.SOPClassUID == OphthalmicTomographyImageStorage
        assert ds.Modality == "OPT"
        assert ds.ImageLaterality == ("R" if case.laterality == "OD" else "L")
        assert int(ds.NumberOfFrames) == case.shape[2]
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        assert [float(v) for v in measures.PixelSpacing] == pytest.approx(
            [case.spacing_mm[1], case.spacing_mm[0]]
        )
        assert float(measures.SpacingBetweenSlices) == pytest.approx(case.spacing_mm[2])
        image = np.transpose(ds.pixel_array, (2, 1, 0))  # (frame,row,col) -> (col,row,frame)
        affine_lps = _opt_affine_lps(ds)
        label_img = nib.load(root / case.label)
        np.testing.assert_allclose(
            label_img.affine, np.diag([-1, -1, 1, 1]) @ affine_lps, atol=1e-5
        )
        label = np.asarray(label_img.dataobj)
        for lesion in case.lesions:
            idx = tuple(
                np.rint(np.linalg.solve(affine_lps, [*lesion.center_lps_mm, 1])[:3]).astype(int)
            )
            assert label[idx] == lesion.label
        if case.lesions:  # the pixel data agrees with the label: fluid is hyporeflective
            assert _fluid_darker_than_surroundings(image, label)


def test_oct_dicom_simpleitk_geometry(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("oct", "dicom")
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        image = sitk.ReadImage(str(root / case.image))
        label_img = sitk.ReadImage(str(root / case.label))
        label = sitk.GetArrayFromImage(label_img)  # (frame, row, col)
        assert image.GetSize() == case.shape
        assert image.GetSpacing() == pytest.approx(case.spacing_mm)
        assert image.GetOrigin() == pytest.approx(label_img.GetOrigin(), abs=1e-5)
        assert image.GetDirection() == pytest.approx(label_img.GetDirection(), abs=1e-6)
        for lesion in case.lesions:
            i, j, k = image.TransformPhysicalPointToIndex(lesion.center_lps_mm)
            assert label[k, j, i] == lesion.label


def test_oct_nifti_geometry_and_fovea(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("oct", "nifti")
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        image = nib.load(root / case.image)
        label = np.asarray(nib.load(root / case.label).dataobj)
        for lesion in case.lesions:
            ras = np.array(lesion.center_lps_mm) * [-1, -1, 1]
            idx = tuple(np.rint(np.linalg.solve(image.affine, [*ras, 1])[:3]).astype(int))
            assert label[idx] == lesion.label
        # the fovea lies near the scan centre (lateral and across B-scans) on the ILM
        assert case.fovea_lps_mm is not None
        fovea = np.linalg.solve(image.affine, [*(np.array(case.fovea_lps_mm) * [-1, -1, 1]), 1])[:3]
        shape = np.array(case.shape)
        assert np.all(np.abs(fovea[[0, 2]] - (shape[[0, 2]] - 1) / 2) < 0.1 * shape[[0, 2]])


def test_png_stack_matches_nifti_variant(synth_dir: Callable[..., Path]) -> None:
    """Same seed -> the PNG stack holds the NIfTI variant's pixels on the same world grid."""
    from medseg.io.images import read_image_stack
    from medseg.io.nifti import read_nifti

    png_root, nii_root = synth_dir("oct", "png"), synth_dir("oct", "nifti")
    png_truth, nii_truth = Truth.load(png_root / "truth.json"), Truth.load(nii_root / "truth.json")
    for png_case, nii_case in zip(png_truth.cases, nii_truth.cases, strict=True):
        stack = read_image_stack(png_root / png_case.image)
        nifti = read_nifti(nii_root / nii_case.image)
        np.testing.assert_array_equal(stack.array, nifti.array)
        np.testing.assert_allclose(stack.affine, nifti.affine, atol=1e-6)
        assert stack.meta["laterality"] == png_case.laterality


def test_cohort_has_both_eyes_dry_bscans_and_both_fluids(tmp_path: Path) -> None:
    from medseg.synth.api import synth_oct

    truth = synth_oct(tmp_path, patients=6, size="tiny", fmt="nifti", seed=0)
    eyes_per_patient = [len(p.cases) for p in truth.patients]
    assert 2 in eyes_per_patient and 1 in eyes_per_patient
    kinds = {les.label for case in truth.cases for les in case.lesions}
    assert kinds == {1, 2}
    sizes = [les.volume_mm3 for case in truth.cases for les in case.lesions]
    assert max(sizes) > 4 * min(sizes)  # varied pocket sizes
    label = np.asarray(nib.load(tmp_path / truth.cases[0].label).dataobj)
    per_bscan = (label > 0).reshape(-1, label.shape[2]).sum(axis=0)
    assert (per_bscan == 0).any() and (per_bscan > 0).any()


def test_followup_visits_share_patient_and_change_fluid(tmp_path: Path) -> None:
    from medseg.synth.api import synth_oct

    truth = synth_oct(tmp_path, patients=1, size="tiny", fmt="nifti", seed=1, visits=2)
    patient = truth.patients[0]
    dates = sorted({case.study_date for case in patient.cases})
    assert len(dates) == 2
    assert all(case.case_id.endswith(case.study_date) for case in patient.cases)
