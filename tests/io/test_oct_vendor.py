"""Vendor OCT exports (HEYEX VOL, XML): geometry, metadata and localizer against eyepy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import DataError, MissingDependencyError
from medseg.io.geometry import LPS_TO_RAS
from medseg.io.oct_vendor import (
    EYE_CENTRE_X_MM,
    classify_lines,
    is_vendor_oct,
    read_vendor_oct,
    read_vendor_volume,
    vendor_format,
)
from medseg.io.read import read_volume
from tests.vendor_data import CIRCLE_VOL, HEYEX_VOL, HEYEX_XML, LINE_VOL, vendor_file

RASTERS = (HEYEX_VOL, HEYEX_XML, LINE_VOL)


def _eyepy_volume(path: Path):  # type: ignore[no-untyped-def]
    ep = pytest.importorskip("eyepy")
    return ep.import_heyex_xml(path) if path.is_dir() else ep.import_heyex_vol(path)


@pytest.mark.parametrize("relative", RASTERS)
def test_shape_spacing_laterality_localizer_match_eyepy(relative: str) -> None:
    path = vendor_file(relative)
    ev = _eyepy_volume(path)
    volume = read_volume(path)
    n, depth, width = ev.shape
    assert volume.shape == (width, depth, n)
    lateral, axial, between = volume.spacing
    assert lateral == pytest.approx(ev.scale_x, rel=1e-9)
    assert axial == pytest.approx(ev.scale_y, rel=1e-9)
    if n > 1:
        assert between == pytest.approx(ev.scale_z, rel=1e-6)
    np.testing.assert_array_equal(volume.array, np.transpose(ev.data, (2, 1, 0)))
    assert volume.meta["laterality"] == ev.laterality == "OD"
    localizer = volume.meta["localizer"]
    np.testing.assert_array_equal(localizer.image, ev.localizer.data)
    spacing = np.linalg.norm(localizer.affine[:3, :2], axis=0)
    np.testing.assert_allclose(spacing, [ev.localizer.scale_x, ev.localizer.scale_y], rtol=1e-9)


@pytest.mark.parametrize("relative", RASTERS)
def test_each_bscan_lies_on_its_localizer_line(relative: str) -> None:
    path = vendor_file(relative)
    ev = _eyepy_volume(path)
    volume = read_volume(path)
    localizer = volume.meta["localizer"]
    scale = np.array([ev.localizer.scale_x, ev.localizer.scale_y])
    width, _, n = volume.shape
    for k, meta in enumerate(ev.meta["bscan_meta"]):
        start_px = np.asarray(meta["start_pos"]) / scale
        end_px = np.asarray(meta["end_pos"]) / scale
        first, last = localizer.to_px(volume.voxel_to_lps([[0, 0, k], [width - 1, 0, k]]))
        np.testing.assert_allclose(first, start_px, atol=0.05)  # stored to 1 µm = 0.08 px
        along = (last - first) / np.linalg.norm(last - first)
        line = (end_px - start_px) / np.linalg.norm(end_px - start_px)
        np.testing.assert_allclose(along, line, atol=1e-9)  # along the stored line
        if relative == LINE_VOL:  # a real export: the last A-scan ends the line (±1 pixel)
            assert np.linalg.norm(last - end_px) <= 1.0
    assert n == len(ev.meta["bscan_meta"])


def test_dummy_lines_longer_than_the_bscans_are_noted() -> None:
    """eyepy's test volume keeps the 6 mm lines of a 512-wide scan for 50 stored A-scans."""
    scan = read_vendor_oct(vendor_file(HEYEX_VOL))
    assert any("6.051 mm long but 50 A-scans" in note for note in scan.notes)
    assert scan.volumes[0].spacing[0] == pytest.approx(0.011819)


def test_vol_and_xml_of_one_scan_share_the_world_grid() -> None:
    vol = read_volume(vendor_file(HEYEX_VOL))
    xml = read_volume(vendor_file(HEYEX_XML))
    np.testing.assert_allclose(vol.affine, xml.affine, atol=1e-6)
    np.testing.assert_allclose(vol.meta["localizer"].affine, xml.meta["localizer"].affine)


def test_world_frame_matches_synthetic_oct(tmp_path: Path) -> None:
    """Lateral along +L, depth along +P, localizer rows along -S, OD eye on the right (-x LPS)."""
    from medseg.synth.api import synth_oct

    truth = synth_oct(tmp_path, patients=1, size="tiny", fmt="nifti", seed=3)
    synth = read_volume(tmp_path / truth.cases[0].image)
    vendor = read_volume(vendor_file(LINE_VOL))
    for volume in (synth, vendor):
        lps = LPS_TO_RAS @ volume.affine
        assert lps[0, 0] > 0 and abs(lps[1, 0]) < 1e-9  # A-scans along +L
        assert lps[1, 1] > 0 and abs(lps[0, 1]) < 1e-9  # depth along +P
    localizer = vendor.meta["localizer"]
    rows, cols = localizer.image.shape
    centre = localizer.to_lps([(cols - 1) / 2, (rows - 1) / 2])
    np.testing.assert_allclose(centre, [-EYE_CENTRE_X_MM, 0, 0], atol=1e-9)
    below = localizer.to_lps([(cols - 1) / 2, rows - 1])
    assert below[2] < centre[2]  # lower image rows are inferior


def test_metadata_eye_date_device_without_names() -> None:
    xml = read_volume(vendor_file(HEYEX_XML))
    line = read_volume(vendor_file(LINE_VOL))
    assert (xml.meta["study_date"], xml.meta["device"]) == ("20000101", "Spectralis")
    assert xml.meta["manufacturer"] == "Heidelberg Engineering"
    assert (line.meta["study_date"], line.meta["laterality"]) == ("20170111", "OD")
    assert line.meta["scan_pattern"] == "line" and line.shape[2] == 1
    assert xml.meta["modality"] == "OPT" and xml.meta["scan_pattern"] == "raster"
    text = repr({k: v for k, v in xml.meta.items() if k != "localizer"})
    assert "Doe" not in text and "John" not in text  # the export's (dummy) patient name


def test_xml_stores_the_vendor_fovea() -> None:
    scan = read_vendor_oct(vendor_file(HEYEX_XML))
    assert scan.localizer is not None and scan.localizer.fovea_px == (370.0, 386.0)
    assert read_vendor_oct(vendor_file(HEYEX_VOL)).localizer.fovea_px is None  # type: ignore[union-attr]


def test_circle_scan_is_refused_clearly() -> None:
    path = vendor_file(CIRCLE_VOL)
    with pytest.raises(DataError, match="circle scan") as err:
        read_volume(path)
    assert str(path) in str(err.value)


def test_classify_raster_line_radial_uneven() -> None:
    angle = np.radians(10.0)  # an oblique raster is still a raster
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    starts = np.array([1.0, 2.0]) + np.arange(5)[:, None] * 0.12 * v
    layout = classify_lines(starts, starts + 6.0 * u)
    assert layout.pattern == "raster" and layout.step_mm is not None
    np.testing.assert_allclose(layout.step_mm, 0.12 * v, atol=1e-12)
    assert classify_lines(starts[:1], starts[:1] + u).pattern == "line"
    phis = np.radians(np.arange(6) * 30.0)  # a star: 6 lines through one centre
    dirs = np.stack([np.cos(phis), np.sin(phis)], axis=1)
    radial = classify_lines(4.0 - 3.0 * dirs, 4.0 + 3.0 * dirs)
    assert radial.pattern == "bscans" and "not parallel" in (radial.note or "")
    uneven = starts.copy()
    uneven[3:] += 0.05 * v  # one gap of 170 µm among 120 µm steps
    layout = classify_lines(uneven, uneven + 6.0 * u)
    assert layout.pattern == "bscans" and "not evenly spaced" in (layout.note or "")


def test_radial_scan_becomes_separate_bscans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each star B-scan gets its own plane through its own line; no 3D grid is made."""
    from medseg.io import oct_vendor
    from medseg.io.heyex import RawOCT

    phis = np.radians(np.arange(4) * 45.0)
    dirs = np.stack([np.cos(phis), np.sin(phis)], axis=1)
    raw = RawOCT(
        bscans=np.zeros((4, 8, 60), np.uint8),
        starts_mm=3.0 - 0.3 * dirs,
        ends_mm=3.0 + 0.3 * dirs,
        scale_mm=(0.01, 0.004, 0.0),
        pattern="radial",
        localizer=np.zeros((100, 100), np.uint8),
        localizer_scale_mm=(0.06, 0.06),
        meta={"laterality": "OS"},
    )
    monkeypatch.setattr(oct_vendor, "_read_raw", lambda path: raw)
    scan = read_vendor_oct(Path(__file__))
    assert scan.pattern == "bscans" and len(scan.volumes) == 4
    assert "not parallel" in scan.notes[0]
    for k, volume in enumerate(scan.volumes):
        assert volume.shape == (60, 8, 1) and volume.meta["bscan_index"] == k
        px = scan.localizer.to_px(volume.voxel_to_lps([[0, 0, 0], [59, 0, 0]]))  # type: ignore[union-attr]
        np.testing.assert_allclose(px[0], raw.starts_mm[k] / 0.06, atol=1e-9)
        np.testing.assert_allclose(px[1], (raw.starts_mm[k] + 0.59 * dirs[k]) / 0.06, atol=1e-9)
    with pytest.raises(DataError, match="not parallel"):
        read_vendor_volume(Path(__file__))


def test_unsupported_and_foreign_files(tmp_path: Path) -> None:
    e2e = tmp_path / "scan.E2E"
    e2e.write_bytes(b"CMDb" + bytes(64))
    assert vendor_format(e2e) == "Heidelberg E2E" and not is_vendor_oct(e2e)
    with pytest.raises(DataError, match="Heidelberg E2E files are recognised but not read"):
        read_volume(e2e)
    foreign = tmp_path / "ultrasound.vol"  # .vol is not always Heidelberg
    foreign.write_bytes(b"KRETZFILE 1.0" + bytes(64))
    with pytest.raises(DataError, match="unsupported file type"):
        read_volume(foreign)
    (tmp_path / "brain.img").write_bytes(bytes(8))
    (tmp_path / "brain.hdr").write_bytes(bytes(8))
    assert vendor_format(tmp_path / "brain.img") is None  # Analyze pair, not a Zeiss cube


def test_missing_eyepy_names_the_oct_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scan.vol"
    path.write_bytes(b"HSF-OCT-103 " + bytes(64))
    monkeypatch.setitem(sys.modules, "eyepy", None)
    monkeypatch.setitem(sys.modules, "eyepy.io", None)
    with pytest.raises(MissingDependencyError, match=r"medseg\[oct\]"):
        read_volume(path)


def test_eyepy_volume_is_placed_like_the_file() -> None:
    from medseg.io.oct_vendor import scan_from_eyepy

    path = vendor_file(HEYEX_VOL)
    from_eyepy = scan_from_eyepy(_eyepy_volume(path)).volumes[0]
    from_file = read_volume(path)
    np.testing.assert_allclose(from_eyepy.affine, from_file.affine, atol=1e-9)
    np.testing.assert_array_equal(from_eyepy.array, from_file.array)
