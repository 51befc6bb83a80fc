"""Series QC: every finding with its severity, on series made messy from clean synthetic CT."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.io.dicom import find_series
from medseg.io.dicom_header import CorruptDicomError, NotDicomError, read_header
from medseg.io.read import read_volume
from tests.helpers import add_localizer, ct_series, edit_slices


@pytest.fixture
def series(tmp_path: Path, synth_dir: Callable[..., Path]) -> Path:
    return Path(shutil.copytree(ct_series(synth_dir("ct", "dicom")), tmp_path / "series"))


def codes(folder: Path) -> list[tuple[str, str]]:
    (info,) = find_series(folder).series
    return [(i.severity, i.code) for i in info.issues]


def test_clean_series_has_no_issues(series: Path) -> None:
    (info,) = find_series(series).series
    assert info.issues == [] and info.usable
    assert info.shape == (40, 40, 20) and info.spacing == pytest.approx((2.0, 2.0, 3.0))


def test_gap_is_an_error(series: Path) -> None:
    (series / "IM0005.dcm").unlink()
    (series / "IM0006.dcm").unlink()
    (info,) = find_series(series).series
    assert [(i.severity, i.code) for i in info.issues] == [("error", "missing_slice")]
    assert "~2 missing" in info.issues[0].message and "instance 4" in info.issues[0].message


def test_nonuniform_spacing_is_resampled(series: Path) -> None:
    def jitter(i: int, ds: pydicom.Dataset) -> None:
        pos = [float(v) for v in ds.ImagePositionPatient]
        pos[2] += 0.4 * (i % 2)
        ds.ImagePositionPatient = pos

    edit_slices(series, jitter)
    assert codes(series) == [("warning", "nonuniform_spacing")]
    volume = read_volume(series)
    assert volume.array.dtype == np.float32 and volume.shape[2] == 20
    assert volume.spacing[2] == pytest.approx(3.0 + 0.4 / 19, rel=0.02)


def test_gantry_tilt_keeps_exact_world_geometry(series: Path) -> None:
    def tilt(i: int, ds: pydicom.Dataset) -> None:
        pos = [float(v) for v in ds.ImagePositionPatient]
        pos[1] += i * 3.0 * np.tan(np.radians(10))  # y shifts with z: 10 degrees
        ds.ImagePositionPatient = pos

    edit_slices(series, tilt)
    assert codes(series) == [("warning", "gantry_tilt")]
    volume = read_volume(series)
    first, last = pydicom.dcmread(series / "IM0001.dcm"), pydicom.dcmread(series / "IM0020.dcm")
    for k, ds in ((0, first), (19, last)):  # each slice's origin lands where its header says
        lps = volume.voxel_to_lps([0, 0, k])
        np.testing.assert_allclose(lps, [float(v) for v in ds.ImagePositionPatient], atol=1e-4)


def test_duplicates(series: Path) -> None:
    shutil.copy(series / "IM0003.dcm", series / "copy_of_3.dcm")
    assert codes(series) == [("warning", "duplicate_file")]
    ds = pydicom.dcmread(series / "IM0004.dcm")
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.save_as(series / "other_at_4.dcm", enforce_file_format=True)
    assert ("error", "duplicate_positions") in codes(series)


def test_mixed_sizes_and_orientations(series: Path) -> None:
    ds = pydicom.dcmread(series / "IM0007.dcm")
    ds.Rows, ds.Columns = 20, 80
    ds.save_as(series / "IM0007.dcm", enforce_file_format=True)
    assert ("error", "mixed_sizes") in codes(series)
    ds = pydicom.dcmread(series / "IM0008.dcm")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9998477, 0.0174524]
    ds.save_as(series / "IM0008.dcm", enforce_file_format=True)
    assert ("error", "mixed_orientations") in codes(series)


def test_localizers(series: Path) -> None:
    add_localizer(series, same_series=True)
    assert codes(series) == [("warning", "localizer_excluded")]
    (series / "LOCALIZER.dcm").unlink()
    add_localizer(series, same_series=False)
    found = find_series(series)
    assert len(found.series) == 2
    scout = next(s for s in found.series if s.series_number == 99)
    assert [(i.severity, i.code) for i in scout.issues] == [("error", "localizer")]


def test_single_slice_and_non_orthogonal(tmp_path: Path, series: Path) -> None:
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(series / "IM0001.dcm", single)
    assert codes(single) == [("warning", "single_slice")]  # a one-slice volume
    volume = read_volume(single)
    assert volume.shape[2] == 1 and volume.spacing[2] > 0
    edit_slices(
        series, lambda i, ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.5, 0.5, 0])
    )
    assert codes(series) == [("error", "non_orthogonal")]


def test_codecs(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_slices(series, lambda i, ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.3.999"))
    assert codes(series) == [("error", "unsupported_codec")]

    def jpeg_ls(i: int, ds: pydicom.Dataset) -> None:
        from pydicom.encaps import encapsulate

        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"
        ds.PixelData = encapsulate([b"\xff\xd8 not really compressed \xff\xd9"])

    edit_slices(series, jpeg_ls)

    class NoPlugins:
        is_available = False

    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoPlugins())
    (info,) = find_series(series).series
    assert [(i.severity, i.code) for i in info.issues] == [("error", "missing_codec")]
    assert "medseg[dicom-codecs]" in info.issues[0].message


def test_truncated_and_garbage_files(tmp_path: Path, series: Path) -> None:
    data = (series / "IM0002.dcm").read_bytes()
    (series / "IM0002.dcm").write_bytes(data[: len(data) - 500])
    with pytest.raises(CorruptDicomError, match="truncated"):
        read_header(series / "IM0002.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(NotDicomError):
        read_header(tmp_path / "junk.dcm")
    found = find_series([series, tmp_path / "junk.dcm"])
    assert {p.name for p, _ in found.unreadable} == {"IM0002.dcm", "junk.dcm"}
    assert [(i.severity, i.code) for i in found.series[0].issues] == [("error", "missing_slice")]


def test_fast_header_matches_pydicom(synth_dir: Callable[..., Path]) -> None:
    folder = ct_series(synth_dir("ct", "dicom"))
    for path in sorted(folder.glob("*.dcm"))[:3]:
        header, ds = read_header(path), pydicom.dcmread(path, stop_before_pixels=True)
        assert header.series_uid == ds.SeriesInstanceUID and header.patient_id == ds.PatientID
        assert header.position == pytest.approx([float(v) for v in ds.ImagePositionPatient])
        assert header.pixel_spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
        assert (header.rows, header.columns, header.instance_number) == (
            ds.Rows,
            ds.Columns,
            ds.InstanceNumber,
        )
    # implicit VR little endian is parsed by the fast path too
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    implicit = folder.parent / "implicit.dcm"
    ds.save_as(implicit, implicit_vr=True, little_endian=True)
    header = read_header(implicit)
    assert header.position == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert header.rows == ds.Rows and header.image_type == tuple(ds.ImageType)


def test_files_without_preamble_read_as_a_series(tmp_path: Path, series: Path) -> None:
    """Old exports write bare datasets (no 128-byte preamble, no 'DICM', no file meta)."""
    reference = read_volume(series)
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in sorted(series.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(bare / path.stem, implicit_vr=True, little_endian=True)  # no suffix either
    assert (bare / "IM0001").read_bytes()[128:132] != b"DICM"
    (info,) = find_series(bare).series
    assert info.usable and info.issues == []
    volume = read_volume(bare)
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine, reference.affine)


def test_values_stored_as_un_and_malformed_geometry(tmp_path: Path, series: Path) -> None:
    """Explicit-VR files may store known attributes as UN; their values still decode. A
    malformed geometric value makes the file unreadable with the attribute named."""
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.tag import Tag

    path = series / "IM0003.dcm"
    ds = pydicom.dcmread(path)
    position = [float(v) for v in ds.ImagePositionPatient]
    raw = "\\".join(str(v) for v in ds.ImagePositionPatient).encode()
    ds["ImagePositionPatient"] = DataElement(0x00200032, "UN", raw + b" " * (len(raw) % 2))
    ds.save_as(tmp_path / "un.dcm", enforce_file_format=True)
    assert read_header(tmp_path / "un.dcm").position == pytest.approx(position)
    ds = pydicom.dcmread(path)
    value = b"0.5\\abc"
    ds[0x00280030] = RawDataElement(Tag(0x00280030), "DS", len(value), value, 0, False, True)
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    with pytest.raises(
        CorruptDicomError, match=r"malformed PixelSpacing \(DS\) value '0.5\\\\abc'"
    ):
        read_header(tmp_path / "bad.dcm")
