"""Per-lesion measurements against analytic shapes and the synthetic CT truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.reports.diameters import max_pairwise_distance
from medseg.reports.measure import InstanceInfo, class_totals, measure_lesions
from medseg.synth.shapes import Ellipsoid, grid_mm, rotation_z
from medseg.synth.truth import Truth

SHAPE = (70, 60, 32)
SPACING = (0.7, 0.9, 1.6)  # anisotropic, mm


def _volume_with(shapes: list[Ellipsoid], value: int = 2) -> Volume:
    """Label map of ellipsoids on an anisotropic grid, affine with an offset and an axis flip."""
    grid = grid_mm(SHAPE, SPACING)
    label = np.zeros(SHAPE, np.uint8)
    for shape in shapes:
        label[shape.mask(grid)] = value
    affine = np.diag([-SPACING[0], SPACING[1], SPACING[2], 1.0])  # RAS; first axis flipped
    affine[:3, 3] = [40.0, -20.0, 100.0]
    return Volume(label, affine)


def _centre_voxel(shape_mm: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(shape_mm) / np.asarray(SPACING) + (np.asarray(SHAPE) - 1) / 2.0


@pytest.mark.parametrize(
    "shape",
    [
        Ellipsoid((-3.0, 2.0, 1.0), (9.0, 9.0, 9.0)),
        Ellipsoid((2.0, -1.0, -2.0), (12.0, 7.0, 6.5), tuple(map(tuple, rotation_z(0.5)))),  # type: ignore[arg-type]
    ],
    ids=["sphere", "rotated_ellipsoid"],
)
def test_volume_diameters_centroid_of_analytic_shapes(shape: Ellipsoid) -> None:
    volume = _volume_with([shape])
    (lesion,) = measure_lesions(volume, lesion_labels=[2], label_names={2: "lesion"})
    diagonal = float(np.linalg.norm(SPACING))
    assert lesion.volume_mm3 == pytest.approx(shape.volume_mm3, rel=0.02)
    assert lesion.longest_diameter_mm == pytest.approx(2 * max(shape.radii_mm), abs=diagonal)
    assert lesion.longest_diameter_mm <= 2 * max(shape.radii_mm) + 1e-6
    # the in-plane axes: the shapes' first two radii lie in the slice plane
    in_plane = float(np.hypot(SPACING[0], SPACING[1]))
    a, b = sorted(shape.radii_mm[:2], reverse=True)
    assert lesion.inplane_long_mm == pytest.approx(2 * a, abs=in_plane)
    assert lesion.inplane_short_mm == pytest.approx(2 * b, abs=in_plane)
    centre_lps = volume.voxel_to_lps(_centre_voxel(shape.center_mm))
    np.testing.assert_allclose(lesion.centroid_lps_mm, centre_lps, atol=0.05)
    assert lesion.label_name == "lesion" and lesion.volume_nl is None
    lo, hi = np.array(lesion.bbox_lps_min_mm), np.array(lesion.bbox_lps_max_mm)
    assert np.all(lo <= centre_lps) and np.all(centre_lps <= hi)
    assert lesion.slice_first <= lesion.inplane_slice <= lesion.slice_last


def test_synthetic_ct_truth_centroids_and_volumes(synth_dir: Callable[..., Path]) -> None:
    root = synth_dir("ct", "nifti")
    truth = Truth.load(root / "truth.json")
    for case in truth.cases:
        labels = read_volume(root / case.label)
        image = read_volume(root / case.image)
        lesions = measure_lesions(labels, lesion_labels=[2], image=image)
        assert len(lesions) == len(case.lesions)
        for expected in case.lesions:
            found = min(lesions, key=lambda les: np.linalg.norm(
                np.subtract(les.centroid_lps_mm, expected.center_lps_mm)))  # fmt: skip
            np.testing.assert_allclose(found.centroid_lps_mm, expected.center_lps_mm, atol=1e-3)
            assert found.volume_mm3 == pytest.approx(expected.volume_mm3)
            assert found.n_voxels == expected.n_voxels
            assert found.mean_intensity is not None and found.mean_intensity < 40  # lesion HU ~18


def test_components_per_class_order_and_totals() -> None:
    small = Ellipsoid((-12.0, 0.0, 0.0), (3.0, 3.0, 4.0))
    large = Ellipsoid((8.0, 0.0, 0.0), (6.0, 5.0, 6.0))
    volume = _volume_with([small, large], value=1)
    array = volume.array.copy()
    array[_volume_with([Ellipsoid((0.0, 12.0, 0.0), (3.0, 3.0, 3.0))]).array == 2] = 2
    volume = volume.with_array(array)
    lesions = measure_lesions(volume, lesion_labels=[1, 2], nanolitres=True)
    assert [(les.lesion_id, les.label) for les in lesions] == [(1, 1), (2, 1), (3, 2)]
    assert lesions[0].volume_mm3 > lesions[1].volume_mm3
    assert lesions[0].volume_nl == pytest.approx(lesions[0].volume_mm3 * 1000)
    totals = class_totals(lesions, lesion_labels=[1, 2, 3], label_names={1: "a"}, nanolitres=True)
    assert [(t.label_name, t.count) for t in totals] == [("a", 2), ("label_2", 1), ("label_3", 0)]
    assert totals[0].volume_mm3 == pytest.approx(lesions[0].volume_mm3 + lesions[1].volume_mm3)
    assert totals[2].volume_mm3 == 0.0


def test_instance_map_splits_touching_lesions_and_keeps_scores() -> None:
    label = np.zeros((20, 20, 5), np.uint8)
    label[2:10, 2:10, 1:4] = 1
    label[10:16, 2:10, 1:4] = 1  # touches the first block: one component
    instances = np.zeros_like(label, dtype=np.uint16)
    instances[2:10, 2:10, 1:4] = 1
    instances[10:16, 2:10, 1:4] = 2
    volume = Volume(label, np.eye(4))
    assert len(measure_lesions(volume, lesion_labels=[1])) == 1
    info = {1: InstanceInfo(label=1, score=0.9), 2: InstanceInfo(score=0.4)}
    lesions = measure_lesions(volume, lesion_labels=[1], instances=volume.with_array(instances),
                              instance_info=info)  # fmt: skip
    assert sorted((les.instance_id, les.score, les.n_voxels) for les in lesions) == [
        (1, 0.9, 192), (2, 0.4, 144)]  # fmt: skip
    assert {les.label for les in lesions} == {1}  # instance 2: majority class of the label map


def test_single_voxel_and_empty_maps() -> None:
    label = np.zeros((5, 5, 5), np.uint8)
    assert measure_lesions(Volume(label, np.eye(4)), lesion_labels=[1]) == []
    label[2, 2, 2] = 1
    (lesion,) = measure_lesions(Volume(label, np.eye(4)), lesion_labels=[1])
    assert lesion.longest_diameter_mm == 0.0 and lesion.inplane_short_mm == 0.0
    assert lesion.volume_mm3 == 1.0


def test_max_pairwise_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for points in (
        rng.normal(size=(2000, 3)) * [5, 2, 1],  # hull path
        np.column_stack([rng.uniform(size=(900, 2)), np.zeros(900)]),  # coplanar: joggled hull
        rng.normal(size=(30, 3)),  # brute-force path
    ):
        axis = max_pairwise_distance(points)
        assert axis.length_mm == pytest.approx(pdist(points).max())
        assert np.linalg.norm(points[axis.first] - points[axis.second]) == pytest.approx(
            axis.length_mm
        )


def test_specks_below_the_postprocessing_floor_are_not_lesions() -> None:
    volume = _volume_with([Ellipsoid((0.0, 0.0, 0.0), (4.0, 4.0, 4.0))])
    array = volume.array.copy()
    array[2, 2, 2] = array[60, 50, 3] = 2  # two one-voxel specks
    array[10, 50, 20:22] = 2  # a two-voxel speck
    specks = Volume(array, volume.affine)
    voxel = specks.voxel_volume_mm3
    assert len(measure_lesions(specks, lesion_labels=[2])) == 4
    kept = measure_lesions(specks, lesion_labels=[2], min_volume_mm3=2 * voxel)
    assert [les.n_voxels for les in kept][1:] == [2] and len(kept) == 2
    assert len(measure_lesions(specks, lesion_labels=[2], min_volume_mm3=3 * voxel)) == 1


def test_the_floor_comes_from_the_run_report(tmp_path: Path) -> None:
    import json

    from medseg.reports.inputs import load_prediction_set
    from tests.reports.conftest import RUN_REPORT_BASE

    (tmp_path / "A.nii.gz").write_bytes(b"")
    report = {**RUN_REPORT_BASE, "settings": {"postprocess": {"min_volume_mm3": 0.0002}}}
    (tmp_path / "run_report.json").write_text(json.dumps(report))
    assert load_prediction_set(tmp_path).min_lesion_mm3 == 0.0002
    (tmp_path / "run_report.json").write_text(json.dumps({**RUN_REPORT_BASE, "settings": {}}))
    assert load_prediction_set(tmp_path).min_lesion_mm3 == 0.0
