"""Label statistics: every label (organs too), checked against independent numpy/nibabel sums."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.io.volume import Volume
from medseg.reports import load_prediction_set, write_reports
from medseg.reports.schema import StatisticsFile
from medseg.reports.statistics import label_statistics
from tests.reports.conftest import check_html, write_predictions

OCT_ONLY = ("fovea_method", "central_subfield_thickness_um")


def _sheared_volume() -> tuple[Volume, Volume]:
    """A label map with two labels on an anisotropic, sheared grid, and an image."""
    rng = np.random.default_rng(3)
    labels = np.zeros((12, 10, 8), np.uint8)
    labels[2:6, 3:7, 1:4] = 1
    labels[8, 8, 6] = 3
    affine = np.array([[0.7, 0.0, 0.3, -10.0], [0.0, 0.9, 0.0, 5.0], [0.0, 0.0, 2.5, 30.0],
                       [0.0, 0.0, 0.0, 1.0]])  # fmt: skip
    image = rng.normal(40.0, 9.0, labels.shape).astype(np.float32)
    return Volume(labels, affine), Volume(image, affine)


def test_statistics_match_independent_numpy() -> None:
    labels, image = _sheared_volume()
    stats = {s.label: s for s in label_statistics(labels, {1: "organ", 2: "lesion"}, image)}
    assert sorted(stats) == [1, 2, 3]  # declared 2 is absent, undeclared 3 is present
    voxel_mm3 = abs(0.7 * 0.9 * 2.5)  # determinant of the (upper triangular) 3x3 part
    for value, stat in stats.items():
        mask = labels.array == value
        assert stat.voxel_count == int(mask.sum())
        assert stat.volume_mm3 == pytest.approx(mask.sum() * voxel_mm3, rel=1e-12)
        if not mask.any():
            assert stat.mean_intensity is None and stat.centroid_lps_mm is None
            continue
        inside = image.array[mask].astype(np.float64)
        assert stat.mean_intensity == pytest.approx(inside.mean(), rel=1e-12)
        assert stat.std_intensity == pytest.approx(inside.std(), rel=1e-9, abs=1e-12)
        assert (stat.min_intensity, stat.max_intensity) == (inside.min(), inside.max())
        ijk = np.argwhere(mask)
        ras = ijk @ labels.affine[:3, :3].T + labels.affine[:3, 3]
        lps = ras * np.array([-1.0, -1.0, 1.0])
        assert stat.centroid_lps_mm == pytest.approx(tuple(lps.mean(axis=0)), abs=1e-9)
        assert stat.bbox_lps_min_mm == pytest.approx(tuple(lps.min(axis=0)), abs=1e-9)
        assert stat.bbox_lps_max_mm == pytest.approx(tuple(lps.max(axis=0)), abs=1e-9)
    assert stats[1].label_name == "organ" and stats[3].label_name == "label_3"
    assert stats[2].voxel_count == 0 and stats[2].volume_mm3 == 0.0


def test_statistics_without_image_have_no_intensities() -> None:
    labels, _ = _sheared_volume()
    stat = label_statistics(labels, {1: "organ"})[0]
    assert stat.voxel_count == 48 and stat.mean_intensity is None and stat.max_intensity is None


def test_ct_report_statistics_json_and_cohort(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    """statistics.json volumes = voxel count (numpy) x voxel volume (nibabel header zooms)."""
    root = synth_dir("ct", "nifti")
    truth = write_predictions(root, tmp_path / "pred", modality="CT")
    out = tmp_path / "out"
    predictions = load_prediction_set(tmp_path / "pred", images=root / "images")
    assert all(o.status == "done" for o in write_reports(predictions, out))
    rows = {r["case_id"]: r for r in csv.DictReader((out / "cohort.csv").open())}
    assert not [c for c in next(iter(rows.values())) if c in OCT_ONLY or c.endswith("_nl")]
    for case in truth.cases:
        patient = case.case_id.split("_")[0]
        data = StatisticsFile.model_validate_json((out / patient / "statistics.json").read_text())
        study = next(s for s in data.studies if s.case_id == case.case_id)
        nifti = nib.load(root / case.label)
        array = np.asarray(nifti.dataobj)
        voxel_mm3 = float(np.prod(nifti.header.get_zooms()[:3]))
        image = np.asarray(nib.load(root / case.image).dataobj, dtype=np.float64)
        assert study.image_used
        by_name = {s.label_name: s for s in study.labels}
        assert set(by_name) == {"organ", "lesion"}  # the organ too, not only lesion classes
        for stat in study.labels:
            count = int(np.count_nonzero(array == stat.label))
            assert stat.voxel_count == count > 0
            assert stat.volume_mm3 == pytest.approx(count * voxel_mm3, rel=1e-9)
            assert stat.mean_intensity == pytest.approx(image[array == stat.label].mean())
            row = rows[case.case_id]
            assert float(row[f"stats.{stat.label_name}.volume_mm3"]) == pytest.approx(
                stat.volume_mm3, rel=1e-5
            )
            assert int(row[f"stats.{stat.label_name}.voxels"]) == count
        html = (out / patient / "report.html").read_text()
        assert "Label statistics" in html and not check_html(html).problems
        report = json.loads((out / patient / "report.json").read_text())
        assert next(s["statistics"] for s in report["studies"] if s["case_id"] == case.case_id)
