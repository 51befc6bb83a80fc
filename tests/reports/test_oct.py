"""OCT: ETDRS subfields and laterality, per-B-scan areas, coverage, thickness, fovea detection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.reports.build import measure_study
from medseg.reports.enface import enface_frame, subfield_of
from medseg.reports.fovea import find_fovea
from medseg.reports.oct import OCTClasses, analyze_oct, bscan_spacing_mm, resolve_laterality
from medseg.reports.schema import StudyReport
from medseg.synth.truth import Truth
from tests.reports.conftest import oct_volume

FLUID = OCTClasses.from_names({1: "IRF", 2: "SRF"}, [1, 2])
NAMES = {0: "background", 1: "IRF", 2: "SRF"}


def _pocket(volume: Volume, nasal_x_mm: float, superior_mm: float, value: int = 1) -> Volume:
    """A small fluid pocket at an offset (mm, LPS x and z) from the scan centre."""
    sx, _, sz = volume.spacing
    ci, ck = (volume.shape[0] - 1) / 2, (volume.shape[2] - 1) / 2
    i = round(ci + nasal_x_mm / sx)  # array axis 0 runs along +x LPS
    k = round(ck - superior_mm / sz)  # B-scans run inferiorly (-z LPS)
    array = volume.array.copy()
    array[i - 3 : i + 4, 15:25, k - 1 : k + 2] = value
    return volume.with_array(array)


@pytest.mark.parametrize(
    ("x_mm", "z_mm", "od", "os"),
    [
        (1.0, 0.0, "inner_nasal", "inner_temporal"),  # +x LPS = patient left = nasal for OD
        (-2.2, 0.0, "outer_temporal", "outer_nasal"),
        (0.0, 1.0, "inner_superior", "inner_superior"),  # +z LPS = superior for both eyes
        (0.0, -2.2, "outer_inferior", "outer_inferior"),
        (0.1, 0.1, "central", "central"),
    ],
)
def test_pocket_lands_in_its_subfield_mirrored_between_eyes(
    x_mm: float, z_mm: float, od: str, os: str
) -> None:
    for eye, expected, eye_x in (("OD", od, -32.0), ("OS", os, 32.0)):
        labels = _pocket(oct_volume(eye_x_mm=eye_x), x_mm, z_mm)
        analysis = analyze_oct(labels, classes=FLUID, laterality=eye)
        assert analysis.fovea.method == "scan_centre"
        total = analysis.volumes_nl["IRF"]
        assert total > 0
        by_name = {s.name: s.fluid_nl["IRF"] for s in analysis.etdrs}
        assert by_name[expected] == pytest.approx(total), (eye, by_name)
        assert sum(by_name.values()) == pytest.approx(total)
        study = measure_study(StudyReport(case_id="c", laterality=eye, modality="OPT"), labels,
                              label_names=NAMES, lesion_labels=[1, 2])  # fmt: skip
        assert study.lesions[0].etdrs_subfield == expected


def test_bscan_areas_sum_to_volume_over_spacing() -> None:
    labels = _pocket(_pocket(oct_volume(), 0.5, 0.3, 1), -1.0, 0.0, 2)
    sheared = labels.affine.copy()
    sheared[0, 2] = 0.03  # B-scans shifted sideways: spacing is the plane-to-plane distance
    for volume in (labels, Volume(labels.array, sheared)):
        analysis = analyze_oct(volume, classes=FLUID, laterality="OD")
        spacing = bscan_spacing_mm(volume)
        assert spacing == pytest.approx(analysis.bscan_spacing_mm) and spacing > 0
        for name in ("IRF", "SRF"):
            area_sum = sum(a.areas_mm2[name] for a in analysis.bscan_areas)
            volume_mm3 = analysis.volumes_nl[name] / 1000.0
            assert area_sum == pytest.approx(volume_mm3 / spacing, rel=1e-9)
        assert len(analysis.bscan_areas) == volume.shape[2]


def test_coverage_and_outside_fluid() -> None:
    wide = analyze_oct(oct_volume(), classes=FLUID, laterality="OD")
    cover = {s.name: s.coverage for s in wide.etdrs}
    assert cover["central"] == 1.0 and min(cover.values()) > 0.97  # 6 x 6 mm scan
    narrow = analyze_oct(oct_volume((120, 40, 20)), classes=FLUID, laterality="OD")  # 2 mm tall
    cover = {s.name: s.coverage for s in narrow.etdrs}
    assert cover["central"] == 1.0
    assert cover["outer_superior"] < 0.2 and cover["outer_nasal"] > 0.3
    far = analyze_oct(_pocket(oct_volume(), 2.9, 2.5), classes=FLUID, laterality="OD")
    assert far.fluid_outside_grid_nl["IRF"] == pytest.approx(far.volumes_nl["IRF"])


def test_central_subfield_thickness_from_retina_label() -> None:
    volume = oct_volume()
    array = volume.array.copy()
    array[:, 10:30, :] = 3  # a flat 200 um retina (20 voxels x 10 um)
    classes = OCTClasses.from_names({1: "IRF", 2: "SRF", 3: "retina"}, [1, 2])
    assert classes.retina == 3 and classes.subretinal == (2,)
    analysis = analyze_oct(volume.with_array(array), classes=classes, laterality="OD")
    assert analysis.fovea.method == "scan_centre"  # flat retina: no thinnest point
    assert analysis.central_subfield_thickness_um == pytest.approx(200.0)
    assert all(s.thickness_um == pytest.approx(200.0) for s in analysis.etdrs)


def test_laterality_from_position() -> None:
    assert resolve_laterality(None, oct_volume(eye_x_mm=-32)) == ("OD", "position")
    assert resolve_laterality(None, oct_volume(eye_x_mm=32)) == ("OS", "position")
    assert resolve_laterality(None, oct_volume(eye_x_mm=0)) == ("OD", "assumed")
    assert resolve_laterality("OS", oct_volume(eye_x_mm=-32)) == ("OS", "metadata")


def test_subfield_of_boundaries() -> None:
    points = np.array([[0.0, 0.0], [0.49, 0.0], [0.0, 0.51], [-1.4, 0.0], [1.9, 2.0], [3.1, 0]])
    expected = ["central", "central", "inner_superior", "inner_temporal", "outer_superior"]
    assert list(subfield_of(points)) == [*expected, "outside"]


def _enface_error_mm(labels: Volume, laterality: str, found: tuple, truth: tuple) -> float:
    frame = enface_frame(labels.affine, laterality, truth)
    return float(np.hypot(*frame.to_enface(np.asarray(found))))


def test_fovea_detection_lands_near_truth(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("oct", "nifti", retina_label=True)
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        labels = read_volume(root / case.label)
        image = read_volume(root / case.image)
        with_retina = find_fovea(labels, retina_label=3, subretinal_labels=[2],
                                 intraretinal_labels=[1])  # fmt: skip
        no_retina = labels.with_array(np.where(labels.array == 3, 0, labels.array))
        from_image = find_fovea(no_retina, image=image, subretinal_labels=[2])
        assert with_retina.method == "retina_label" and from_image.method == "ilm_surface"
        for found in (with_retina, from_image):
            error = _enface_error_mm(labels, case.laterality, found.lps_mm, case.fovea_lps_mm)
            # tiny grid: 67 um lateral, 500 um between B-scans
            assert error < 0.25, (case.case_id, found.method, error)
            depth_error = abs(found.lps_mm[1] - case.fovea_lps_mm[1])
            assert depth_error < 0.1, (case.case_id, found.method, depth_error)
    fallback = find_fovea(no_retina)
    assert fallback.method == "scan_centre" and "no retina label" in fallback.detail


def test_flat_image_has_no_pit_and_falls_back_to_centre() -> None:
    volume = oct_volume((60, 40, 20))
    image = np.zeros(volume.shape, np.float32)
    image[:, 20:, :] = 200.0  # a flat bright layer: no foveal pit
    found = find_fovea(volume, image=volume.with_array(image))
    assert found.method == "scan_centre" and "no foveal pit" in found.detail
