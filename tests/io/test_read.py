"""``read_volume`` over every source agrees with SimpleITK/nibabel and with the truth."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import DataError
from medseg.io.read import DicomSeriesRef, read_volume, write_volume
from medseg.synth.truth import Truth
from tests.helpers import ct_series

SOURCES = [("ct", "dicom"), ("ct", "nifti"), ("oct", "dicom"), ("oct", "nifti"), ("oct", "png")]


@pytest.mark.parametrize(("kind", "fmt"), SOURCES)
def test_truth_centres_land_in_their_lesions(
    kind: str, fmt: str, synth_dir: Callable[..., Path]
) -> None:
    root = synth_dir(kind, fmt)
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        image = read_volume(case.image, root=root)
        label = read_volume(case.label, root=root)
        assert image.shape == label.shape == case.shape
        np.testing.assert_allclose(image.affine, label.affine, atol=1e-5)
        assert image.spacing == pytest.approx(case.spacing_mm)
        for lesion in case.lesions:
            idx = tuple(np.rint(image.lps_to_voxel(lesion.center_lps_mm)).astype(int))
            assert label.array[idx] == lesion.label


def test_dicom_series_matches_simpleitk(synth_dir: Callable[..., Path]) -> None:
    folder = ct_series(synth_dir("ct", "dicom"))
    ours = read_volume(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    theirs = reader.Execute()
    np.testing.assert_array_equal(
        ours.array, np.transpose(sitk.GetArrayFromImage(theirs), (2, 1, 0))
    )
    lps = np.diag([-1, -1, 1, 1]) @ ours.affine
    np.testing.assert_allclose(lps[:3, 3], theirs.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.spacing, theirs.GetSpacing())
    assert ours.meta["modality"] == "CT" and len(ours.meta["sop_instance_uids"]) == 20


def test_oct_dicom_matches_nifti_variant(synth_dir: Callable[..., Path]) -> None:
    dcm_root, nii_root = synth_dir("oct", "dicom"), synth_dir("oct", "nifti")
    for a, b in zip(
        Truth.load(dcm_root / "truth.json").cases, Truth.load(nii_root / "truth.json").cases
    ):
        dicom, nifti = read_volume(a.image, root=dcm_root), read_volume(b.image, root=nii_root)
        np.testing.assert_array_equal(dicom.array, nifti.array)
        np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-5)
        assert dicom.meta["laterality"] == a.laterality
        assert dicom.array.dtype == np.uint8


def test_series_ref_and_nrrd_round_trip(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    folder = ct_series(synth_dir("ct", "dicom"))
    files = sorted(p.name for p in folder.glob("*.dcm"))[::-1]  # order does not matter
    from medseg.io.dicom_header import read_header

    uid = read_header(folder / files[0]).series_uid
    volume = read_volume(DicomSeriesRef(series_uid=uid, files=files), root=folder)
    np.testing.assert_array_equal(volume.array, read_volume(folder).array)
    for suffix in (".nrrd", ".mha", ".nii.gz"):
        out = write_volume(volume, tmp_path / f"v{suffix}")
        back = read_volume(out)
        np.testing.assert_array_equal(back.array, volume.array)
        np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
    ras = nib.load(tmp_path / "v.nii.gz").affine
    np.testing.assert_allclose(ras, volume.affine, atol=1e-5)


def test_clear_errors(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        read_volume(tmp_path / "notes.txt")
    two = tmp_path / "two"
    root = synth_dir("ct", "dicom")
    shutil.copytree(ct_series(root, 0), two / "a")
    shutil.copytree(ct_series(root, 1), two / "b")
    with pytest.raises(DataError, match="holds 2 usable DICOM series"):
        read_volume(two)
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"bad\.nii\.gz"):
        read_volume(tmp_path / "bad.nii.gz")


def test_load_volumed_emits_metatensor_with_affine(synth_dir: Callable[..., Path]) -> None:
    import torch

    from medseg.transforms.load import LoadVolumed

    root = synth_dir("oct", "dicom")
    case = Truth.load(root / "truth.json").cases[0]
    out = LoadVolumed(("image", "label"), root=root, dtypes={"image": np.float32})(
        {"image": case.image, "label": case.label}
    )
    image, label = out["image"], out["label"]
    assert tuple(image.shape) == (1, *case.shape) and image.dtype == torch.float32
    np.testing.assert_allclose(image.affine.numpy(), read_volume(case.image, root=root).affine)
    np.testing.assert_allclose(label.affine.numpy(), image.affine.numpy(), atol=1e-5)
    assert image.meta["laterality"] == case.laterality
