"""One connected-components rule: fingerprint, evaluation, reports and post-processing agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.evaluation import evaluate_arrays
from medseg.inference.postprocess import remove_small_components
from medseg.io.nifti import write_nifti
from medseg.io.volume import Volume
from medseg.labelmaps import label_components, label_dtype
from medseg.manifest.fingerprint import compute_fingerprint
from medseg.manifest.schema import Case, Manifest, load_manifest, save_manifest
from medseg.models.maskrcnn import targets_from_label_map
from medseg.reports.measure import measure_lesions

LESION = 2


def _diagonal_blobs() -> np.ndarray:
    """Three lesion blobs (label 2): A and B touch only at a corner, C stands apart."""
    label = np.zeros((12, 12, 8), dtype=np.uint8)
    label[1:4, 1:4, 1:4] = LESION  # A
    label[4:6, 4:6, 4:6] = LESION  # B: its voxel (4, 4, 4) is A's (3, 3, 3) corner neighbour
    label[8:11, 8:11, 1:3] = LESION  # C
    label[0:2, 9:12, 6:8] = 1  # an organ, not a lesion
    return label


@pytest.mark.parametrize(("connectivity", "expected"), [(6, 3), (18, 3), (26, 2)])
def test_label_components_3d(connectivity: int, expected: int) -> None:
    components, n = label_components(_diagonal_blobs() == LESION, connectivity=connectivity)
    assert n == expected and components.dtype == np.int32
    assert components.max() == n
    # raster order: the first blob found scanning the array is number 1
    assert components[1, 1, 1] == 1


def test_label_components_2d_takes_3d_names() -> None:
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    assert label_components(mask)[1] == 1  # 26 -> 8 in-plane
    assert label_components(mask, connectivity=6)[1] == 2  # 6 -> 4 in-plane
    assert label_components(mask, connectivity=4)[1] == 2
    with pytest.raises(ValueError, match="connectivity"):
        label_components(mask, connectivity=5)
    with pytest.raises(ValueError, match="connectivity for 3D"):
        label_components(np.ones((2, 2, 2)), connectivity=8)


def test_label_dtype_rule() -> None:
    assert label_dtype(0) is np.uint8 and label_dtype(255) is np.uint8
    assert label_dtype(256) is np.uint16 and label_dtype(256, signed=True) is np.int16


def test_fingerprint_evaluation_report_count_the_same_lesions(tmp_path: Path) -> None:
    """Corner-touching blobs are one lesion everywhere (26-connectivity), so 2 lesions."""
    label = _diagonal_blobs()
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    write_nifti(Volume(label, affine), tmp_path / "lab.nii.gz")
    write_nifti(Volume(label.astype(np.float32), affine), tmp_path / "img.nii.gz")
    manifest = Manifest(
        name="blobs",
        labels={"0": "background", "1": "organ", "2": "lesion"},
        lesion_labels=[LESION],
        cases=[Case(case_id="c0", patient_id="p0", images={"image": "img.nii.gz"},
                    label="lab.nii.gz")],
    )  # fmt: skip
    save_manifest(manifest, tmp_path / "m.json")
    fingerprint = compute_fingerprint(load_manifest(tmp_path / "m.json"))
    metrics = evaluate_arrays(
        label, label, spacing=(0.8, 0.8, 2.0), labels={1: "organ", 2: "lesion"},
        lesion_labels=[LESION],
    )  # fmt: skip
    reported = measure_lesions(Volume(label, affine), lesion_labels=[LESION])
    targets = targets_from_label_map(label, classes=[LESION])
    counts = {
        "fingerprint": fingerprint.lesions[str(LESION)].n_lesions,
        "evaluation": metrics.lesions[LESION].scores.n_ref,
        "report": len(reported),
        "maskrcnn_targets": len(targets["labels"]),
        "label_components": label_components(label == LESION)[1],
    }
    assert set(counts.values()) == {2}, counts


def test_postprocess_drops_small_components_with_the_same_rule() -> None:
    label = _diagonal_blobs()
    # B (8 voxels) alone would be under 20 voxels, but it is part of A (27 + 8): kept
    out = remove_small_components(label, spacing=(1, 1, 1), min_volume_mm3=20.0)
    assert out[4, 4, 4] == LESION and out[1, 1, 1] == LESION
    assert out[8, 8, 1] == 0  # C: 18 voxels
