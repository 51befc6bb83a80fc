"""Synthetic CT: the truth lesion centres land inside the lesion label whichever reader is used.

Each reader is used independently of medseg's own reader: pydicom (affine computed here from the
raw headers), SimpleITK (its own physical-point mapping) and nibabel (NIfTI variant).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg.synth.truth import Truth

LESION = 2
LESION_HU, ORGAN_HU = 18.0, 62.0


def _flip(points: np.ndarray) -> np.ndarray:
    out = np.array(points, dtype=float)
    out[..., :2] *= -1
    return out


def _pydicom_volume(series_dir: Path) -> tuple[np.ndarray, np.ndarray, list[pydicom.Dataset]]:
    """HU array (col,row,slice) and voxel->LPS affine computed from the raw headers."""
    slices = [pydicom.dcmread(p) for p in series_dir.glob("*.dcm")]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
    first = np.array(slices[0].ImagePositionPatient, float)
    step = (np.array(slices[-1].ImagePositionPatient, float) - first) / (len(slices) - 1)
    row_sp, col_sp = (float(v) for v in slices[0].PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2], affine[:3, 3] = (
        iop[:3] * col_sp,
        iop[3:] * row_sp,
        step,
        first,
    )
    hu = np.stack(
        [ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices],
        axis=2,
    )
    return hu, affine, slices


def _lesion_cases(root: Path) -> Truth:
    truth = Truth.load(root / "truth.json")
    assert sum(len(c.lesions) for c in truth.cases) >= 2
    return truth


def test_pydicom_geometry(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "dicom")
    truth = _lesion_cases(root)
    for case in truth.cases:
        hu, affine_lps, slices = _pydicom_volume(root / case.image)
        label_img = nib.load(root / case.label)
        label = np.asarray(label_img.dataobj)
        # the label NIfTI sits on exactly the DICOM grid (RAS = LPS with x, y flipped)
        np.testing.assert_allclose(
            label_img.affine, np.diag([-1, -1, 1, 1]) @ affine_lps, atol=1e-4
        )
        assert label.shape == hu.shape
        for lesion in case.lesions:
            ijk = np.linalg.solve(affine_lps, [*lesion.center_lps_mm, 1.0])[:3]
            idx = tuple(np.rint(ijk).astype(int))
            assert label[idx] == LESION
            assert abs(hu[idx] - LESION_HU) < abs(hu[idx] - ORGAN_HU) + 15  # lesion-like intensity
        # spacing read back as written
        assert tuple(float(v) for v in slices[0].PixelSpacing) == pytest.approx(
            case.spacing_mm[1::-1]
        )
        assert float(slices[0].SliceThickness) == pytest.approx(case.spacing_mm[2])
        assert slices[0].PixelRepresentation == 1 and float(slices[0].RescaleIntercept) == -1024.0
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)


def test_simpleitk_geometry(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "dicom")
    truth = _lesion_cases(root)
    for case in truth.cases:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(root / case.image)))
        image = reader.Execute()
        hu = sitk.GetArrayFromImage(image)  # (slice, row, col)
        label_sitk = sitk.ReadImage(str(root / case.label))
        label = sitk.GetArrayFromImage(label_sitk)
        assert image.GetSpacing() == pytest.approx(case.spacing_mm)
        assert label_sitk.GetOrigin() == pytest.approx(image.GetOrigin(), abs=1e-4)
        for lesion in case.lesions:
            i, j, k = image.TransformPhysicalPointToIndex(lesion.center_lps_mm)
            assert label_sitk.TransformPhysicalPointToIndex(lesion.center_lps_mm) == (i, j, k)
            assert label[k, j, i] == LESION
            assert hu[k, j, i] < 45


def test_nibabel_nifti_geometry(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "nifti")
    truth = _lesion_cases(root)
    for case in truth.cases:
        image = nib.load(root / case.image)
        label = np.asarray(nib.load(root / case.label).dataobj)
        hu = np.asarray(image.dataobj)
        assert image.header.get_zooms() == pytest.approx(case.spacing_mm)
        for lesion in case.lesions:
            ras = _flip(lesion.center_lps_mm)
            ijk = np.linalg.solve(image.affine, [*ras, 1.0])[:3]
            idx = tuple(np.rint(ijk).astype(int))
            assert label[idx] == LESION
            assert hu[idx] < 45


def test_lesion_volumes_match_labels(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "nifti")
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        img = nib.load(root / case.label)
        voxel_mm3 = float(np.prod(img.header.get_zooms()))
        n_lesion_voxels = int((np.asarray(img.dataobj) == LESION).sum())
        assert sum(les.volume_mm3 for les in case.lesions) == pytest.approx(
            n_lesion_voxels * voxel_mm3
        )
        for lesion in case.lesions:  # voxelised volume close to the analytic ellipsoid
            assert lesion.analytic_volume_mm3 is not None
            assert lesion.volume_mm3 == pytest.approx(lesion.analytic_volume_mm3, rel=0.35)


def test_same_seed_same_pixels_other_seed_differs(tmp_path: Path) -> None:
    from medseg.synth.api import synth_ct

    def pixels(out: Path, seed: int) -> bytes:
        synth_ct(out, patients=1, size="tiny", seed=seed)
        files = sorted((out / "images").rglob("*.dcm"))
        return b"".join(pydicom.dcmread(f).PixelData for f in files)

    a, b, c = pixels(tmp_path / "a", 7), pixels(tmp_path / "b", 7), pixels(tmp_path / "c", 8)
    assert a == b
    assert a != c


def test_patient_content_independent_of_cohort_size(tmp_path: Path) -> None:
    from medseg.synth.api import synth_ct

    one = synth_ct(tmp_path / "one", patients=1, size="tiny", fmt="nifti", seed=2)
    two = synth_ct(tmp_path / "two", patients=2, size="tiny", fmt="nifti", seed=2)
    a = np.asarray(nib.load(tmp_path / "one" / one.cases[0].image).dataobj)
    b = np.asarray(nib.load(tmp_path / "two" / two.cases[0].image).dataobj)
    np.testing.assert_array_equal(a, b)
