"""Real public files shipped in PyPI packages (never skipped): pydicom's one-slice CT
(``CT_small.dcm``) and scikit-image's retinal images (``microaneurysms.png``, ``retina.jpg``) and
TIFFs go through the CLI or the reader with their geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import skimage
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from skimage.filters import gaussian, threshold_otsu
from typer.testing import CliRunner

from medseg.cli import app
from medseg.io.image_files import ImageFileRef
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.read import read_volume
from medseg.manifest.schema import load_manifest
from tests.data2d import write_workflow

runner = CliRunner()
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


def invoke(*args: object) -> str:
    result = runner.invoke(app, ["--no-progress", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _stages(tmp_path: Path, images: Path, labels: Path, *build: str) -> Path:
    """manifest build, train (a few iterations), predict the folder, evaluate, report."""
    manifest = tmp_path / "m.json"
    invoke("manifest", "build", images, "--labels", labels, "-o", manifest, "--folds", "2", *build)
    run = tmp_path / "run"
    invoke("train", write_workflow(tmp_path / "wf.yaml", manifest), "-o", run)
    invoke("predict", run, images, "-o", tmp_path / "pred")
    invoke("evaluate", tmp_path / "pred", "--ref", manifest, "-o", tmp_path / "eval")
    invoke("report", tmp_path / "pred", "-o", tmp_path / "rep", "--images", manifest)
    return manifest


@pytest.mark.slow
def test_real_one_slice_ct(tmp_path: Path, one_torch_thread: None) -> None:
    """pydicom's CT_small.dcm (one 128 x 128 slice) and a copy as a second patient."""
    images, labels = tmp_path / "dicom", tmp_path / "labels"
    for patient in ("CTA", "CTB"):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PatientID = patient
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        (images / patient).mkdir(parents=True)
        ds.save_as(images / patient / "ct.dcm")
        volume = read_volume(images / patient)  # a one-slice volume, not "no usable series"
        assert volume.shape == (128, 128, 1) and volume.meta["modality"] == "CT"
        body = (volume.array > -300).astype(np.uint8)
        write_nifti(volume.with_array(body), labels / f"{patient}.nii.gz")
    manifest = _stages(tmp_path, images, labels, "--label-names", "1=body")
    for case in load_manifest(manifest).cases:
        source = read_volume(images / case.patient_id)
        pred = read_nifti(tmp_path / "pred" / f"{case.case_id}.nii.gz")
        assert pred.shape == source.shape == (128, 128, 1)
        np.testing.assert_allclose(pred.affine, source.affine, atol=1e-5)
        assert any(i.code == "single_slice" for i in case.issues)


@pytest.mark.slow
def test_real_retinal_png(tmp_path: Path, one_torch_thread: None) -> None:
    """scikit-image's microaneurysms.png (a real 102 x 102 retinal crop), with a 0/255 mask."""
    images, labels = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    labels.mkdir()
    grey = np.asarray(Image.open(SKIMAGE_DATA / "microaneurysms.png"))
    for name, picture in (("eye_a", grey), ("eye_b", grey[:, ::-1])):
        Image.fromarray(picture).save(images / f"{name}.png")
        smooth = gaussian(picture.astype(float), sigma=1.0)
        mask = (smooth < threshold_otsu(smooth)).astype(np.uint8) * 255  # dark: vessels, lesions
        Image.fromarray(mask).save(labels / f"{name}.png")
    manifest = _stages(tmp_path, images, labels)
    loaded = load_manifest(manifest)
    assert loaded.label_mapping == {"255": 1}
    for case in loaded.cases:
        pred = read_nifti(tmp_path / "pred" / f"{case.case_id}.nii.gz")
        assert pred.array[:, :, 0].T.shape == grey.shape  # the PNG's own pixel grid
        assert any(i.code == "unknown_spacing" for i in case.issues)


def test_real_files_read_with_their_geometry() -> None:
    retina = read_volume(SKIMAGE_DATA / "retina.jpg")  # RGB JPEG stating 150 dpi (JFIF)
    assert retina.shape == (1411, 1411, 1) and retina.meta["colour"]
    np.testing.assert_allclose(retina.spacing, (25.4 / 150, 25.4 / 150, 1.0))
    red = read_volume(ImageFileRef(path=str(SKIMAGE_DATA / "retina.jpg"), component=0))
    assert not np.array_equal(red.array, retina.array)  # a component, not the luma
    pages = read_volume(SKIMAGE_DATA / "multipage.tif")  # two pages, 72 dpi display default
    assert pages.shape == (10, 15, 2) and pages.meta["spacing_source"] == "unknown"
    rgb_pages = read_volume(SKIMAGE_DATA / "multipage_rgb.tif")  # PIL cannot open this one
    assert rgb_pages.meta["colour"] and rgb_pages.shape[2] == 2
