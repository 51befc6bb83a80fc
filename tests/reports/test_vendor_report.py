"""Reports of vendor OCT volumes: scanner metadata, fluid and ETDRS grid on the real localizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.io.nifti import write_nifti
from medseg.io.oct_vendor import read_vendor_oct
from medseg.io.read import read_volume
from medseg.reports.build import measure_study
from medseg.reports.enface import enface_frame
from medseg.reports.inputs import load_prediction_set
from medseg.reports.localizer import fluid_on_localizer, localizer_of, vendor_fovea
from medseg.reports.pipeline import write_reports
from medseg.reports.schema import StudyReport
from tests.vendor_data import HEYEX_XML, LINE_VOL, vendor_file

NAMES = {0: "background", 1: "IRF", 2: "SRF"}


def _line_scan_prediction(out: Path) -> Path:
    """A label map on the real line scan: an IRF pocket temporal, SRF nasal to the fovea."""
    source = vendor_file(LINE_VOL)
    volume = read_volume(source)
    labels = np.zeros(volume.shape, np.uint8)
    labels[280:300, 110:125, 0] = 1
    labels[440:480, 150:160, 0] = 2
    out.mkdir()
    write_nifti(volume.with_array(labels), out / "scan.nii.gz")
    entry = {"case_id": "scan", "status": "done", "source": str(source), "patient_id": "P1",
             "outputs": {"labels": "scan.nii.gz"}}  # fmt: skip
    run = {"labels": {str(k): v for k, v in NAMES.items()}, "lesion_labels": [1, 2],
           "cases": [entry]}  # fmt: skip
    (out / "run_report.json").write_text(json.dumps(run))
    return source


def test_report_of_a_vendor_line_scan(tmp_path: Path) -> None:
    _line_scan_prediction(tmp_path / "pred")
    outcomes = list(write_reports(load_prediction_set(tmp_path / "pred"), tmp_path / "report"))
    assert [o.status for o in outcomes] == ["done"], [o.error for o in outcomes]
    report = json.loads((tmp_path / "report" / "P1" / "report.json").read_text())
    study = report["studies"][0]
    # eye, date and scanner come from the vendor file (the run report did not give them)
    assert (study["laterality"], study["study_date"]) == ("OD", "2017-01-11")
    assert study["scanner"] == "Heidelberg Engineering Spectralis"
    assert any("single B-scan" in w for w in study["warnings"])
    fovea = study["oct"]["fovea"]
    assert fovea["method"] == "ilm_surface"  # the real foveal pit, near the scan's middle
    assert 330 <= fovea["voxel"][0] <= 410
    subfields = {s["name"]: s["fluid_nl"] for s in study["oct"]["etdrs"]}
    assert subfields["inner_temporal"]["IRF"] > 0 and subfields["inner_nasal"]["SRF"] > 0
    html = (tmp_path / "report" / "P1" / "report.html").read_text()
    assert "Fluid on the localizer" in html and "Heidelberg Engineering Spectralis" in html


def test_raster_fluid_lands_on_its_bscan_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fluid in B-scan k, A-scans a..b, is painted on the localizer around line k between a, b."""
    from medseg.io import oct_vendor
    from medseg.io.heyex import RawOCT

    starts = np.stack([np.full(5, 1.0), 2.0 + 0.2 * np.arange(5)], axis=1)  # 200 µm apart
    raw = RawOCT(
        bscans=np.zeros((5, 16, 100), np.uint8), starts_mm=starts,
        ends_mm=starts + np.array([1.0, 0.0]), scale_mm=(0.01, 0.004, 0.2), pattern="volume",
        localizer=np.zeros((300, 300), np.uint8), localizer_scale_mm=(0.01, 0.01),
        meta={"laterality": "OS"},
    )  # fmt: skip
    monkeypatch.setattr(oct_vendor, "_read_raw", lambda path: raw)
    volume = read_vendor_oct(Path(__file__)).volumes[0]
    labels = np.zeros(volume.shape, np.uint8)
    labels[40:60, 5:10, 2] = 1  # 5 voxels of 4 µm = 20 µm high
    labels = volume.with_array(labels)
    localizer = localizer_of(volume)
    assert localizer is not None
    frame = enface_frame(labels.affine, "OS", labels.voxel_to_lps([50, 0, 2]))
    heights = fluid_on_localizer(localizer, labels, frame, {1: "IRF"})
    rows, cols = np.nonzero(np.isfinite(heights))
    np.testing.assert_allclose(heights[rows, cols], 20.0)
    assert (rows.min(), rows.max()) == (230, 250)  # line 2 at y = 240 px, +-100 µm (ties: 2)
    assert (cols.min(), cols.max()) == (140, 159)  # A-scans 40..59 from x = 100 px


def test_vendor_fovea_centres_the_grid_and_detection_is_kept() -> None:
    xml = vendor_file(HEYEX_XML)
    image = read_volume(xml)
    labels = image.with_array(np.zeros(image.shape, np.uint8))
    fovea = vendor_fovea(labels, image)
    assert fovea is not None and fovea.method == "vendor"
    localizer = localizer_of(image)
    expected = localizer.to_lps([370.0, 386.0])  # type: ignore[union-attr]
    frame = enface_frame(labels.affine, "OD", expected)
    assert np.hypot(*frame.to_enface(np.asarray(fovea.lps_mm))) < 1e-6  # same en-face point
    study = StudyReport(case_id="xml", laterality="OD", modality="OPT")
    measured = measure_study(study, labels, label_names=NAMES, lesion_labels=[1, 2], image=image)
    assert measured.oct is not None and measured.oct.fovea.method == "vendor"
    assert measured.oct.fovea_detected is not None
    assert measured.oct.fovea_detected.method != "vendor"
