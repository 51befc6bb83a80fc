"""Real DICOM SEG files from highdicom's and dcmqi's test data on their real CT series.

The data are re-obtained (never committed) by ``python benchmarks/get_real_data.py dicom-corpus``;
without them these tests skip. pydicom's own test series (shipped on PyPI) is the CT that
highdicom's SEG examples were derived from. Each SEG frame names the source slice it belongs to
(``ReferencedSOPInstanceUID``): the label map medseg reads must put that frame's pixels on that
slice of the CT that medseg reads.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.errors import DataError, GeometryError
from medseg.io.dicom_seg_read import is_dicom_seg
from medseg.io.grid import onto_grid
from medseg.io.label_files import read_label_map
from medseg.io.nifti import write_nifti
from medseg.io.read import DicomSeriesRef, read_volume
from medseg.io.volume import Volume
from tests.helpers import real_data_dir

PYDICOM_CT2 = Path(pydicom.__file__).parent / "data/test_files/dicomdirtests/77654033/CT2"


def _corpus() -> Path:
    corpus = real_data_dir("dicom-corpus")
    if corpus is None:
        pytest.skip(
            "real DICOM test files absent: run `python benchmarks/get_real_data.py dicom-corpus` "
            "(copies highdicom's and dcmqi's test data into $MEDSEG_REAL_DATA/dicom-corpus)"
        )
    return corpus


def _frames_on_grid(seg_path: Path, ct: Volume) -> dict[int, np.ndarray]:
    """Each segment's mask on the CT grid, placed by the frames' referenced SOP instances."""
    ds = pydicom.dcmread(seg_path)
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    if ds.SegmentationType == "FRACTIONAL":  # medseg's rule: a fraction of at least 0.5
        pixels = pixels / float(ds.MaximumFractionalValue) >= 0.5
    uids = list(ct.meta["sop_instance_uids"])
    masks: dict[int, np.ndarray] = {}
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        mask = masks.setdefault(number, np.zeros(ct.shape, dtype=bool))
        mask[:, :, uids.index(source.ReferencedSOPInstanceUID)] |= pixels[index].T > 0
    return masks


def _check_on_source_slices(seg_path: Path, ct: Volume) -> np.ndarray:
    placed = onto_grid(read_label_map(seg_path), ct.affine, ct.shape).array
    masks = _frames_on_grid(seg_path, ct)
    for number, mask in masks.items():  # segment numbers are the label values (no names known)
        assert mask.any()
        assert not ((placed == number) & ~mask).any()  # a label only where its frames say
        assert not (mask & (placed < number)).any()  # overlaps: the highest label is kept
    return placed


def test_every_real_seg_reads_or_is_refused_clearly() -> None:
    corpus = _corpus()
    read, refused = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom warns about the test files' oddities
        for path in sorted(corpus.rglob("*.dcm")):
            if not is_dicom_seg(path):
                continue
            try:
                read_label_map(path)
                read.append(path.name)
            except DataError as err:
                refused.append((path.name, err.message))
    assert {"liver.dcm", "partial_overlaps.dcm", "seg_image_ct_binary.dcm"} <= set(read)
    assert refused and all("slide" in m or "no positions" in m for _, m in refused), refused


def test_dcmqi_liver_seg_on_its_ge_ct_series(tmp_path: Path) -> None:
    corpus = _corpus() / "dcmqi" / "data" / "segmentations"
    ct = read_volume(corpus / "ct-3slice")
    assert ct.shape == (512, 512, 3)
    placed = _check_on_source_slices(corpus / "liver.dcm", ct)
    assert np.count_nonzero(placed) > 100_000
    _check_on_source_slices(corpus / "partial_overlaps.dcm", ct)
    # medseg evaluate: the SEG as reference, its frames placed by SOP instance as prediction
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    write_nifti(ct.with_array(_frames_on_grid(corpus / "liver.dcm", ct)[1].astype(np.uint8)),
                pred / "ct.nii.gz")  # fmt: skip
    shutil.copy(corpus / "liver.dcm", ref / "ct.dcm")
    result = CliRunner().invoke(
        app, ["--no-progress", "evaluate", str(pred), "--ref", str(ref), "-o", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    assert "1 of 1 case evaluated" in result.output
    rows = (tmp_path / "e" / "case_metrics.csv").read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert float(row[header.index("dice")]) == 1.0


def test_highdicom_segs_on_pydicoms_ct_series() -> None:
    test_files = _corpus() / "highdicom" / "data" / "test_files"
    files = sorted(PYDICOM_CT2.iterdir())
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    near = [str(f) for f, h in zip(files, heads) if float(h.ImagePositionPatient[2]) > 0]
    ct = read_volume(DicomSeriesRef(series_uid=uid, files=near))  # the 3 contiguous slices
    for name in ("seg_image_ct_binary.dcm", "seg_image_ct_true_fractional.dcm"):
        placed = _check_on_source_slices(test_files / name, ct)
        assert np.count_nonzero(placed) == 638
    with pytest.raises(GeometryError, match="outside the target grid"):
        # its second segment lies on the slice 200 mm away, which the 3-slice grid lacks
        onto_grid(read_label_map(test_files / "seg_image_ct_binary_overlap.dcm"), ct.affine,
                  ct.shape)  # fmt: skip
