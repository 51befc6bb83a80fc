"""Every place that pools, pads, crops or takes components works on an axis of one voxel.

One-slice volumes (2D images, single B-scans) put a 1 along some axis; each test builds the
2D answer and checks the one-slice 3D version gives it (for every position of the flat axis).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.evaluation.metrics import compute_class_metrics
from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.inference.postprocess import fill_holes, keep_largest_component, remove_small_components
from medseg.inference.preview import _panel_size, preview_axis, write_preview
from medseg.inference.windows import (
    WindowSettings,
    crop_margin,
    foreground_box,
    foreground_mask,
    pad_to_window,
    predict_probabilities,
)
from medseg.io.nifti import read_nifti
from medseg.io.read import read_volume
from medseg.manifest.schema import load_manifest
from tests.data2d import write_2d_dataset


def _ring(speck: bool = True) -> np.ndarray:
    """A 2D ring with a hole and (optionally) a separate one-pixel speck (24 x 30)."""
    yy, xx = np.mgrid[:24, :30]
    r2 = (yy - 11) ** 2 + (xx - 12) ** 2
    ring = ((r2 < 64) & (r2 >= 9)).astype(np.uint8)
    ring[20, 27] = speck
    return ring


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("rule", ["otsu", "above_min"])
def test_foreground_mask_and_box_on_a_flat_axis(axis: int, rule: str) -> None:
    image = torch.from_numpy(np.expand_dims(_ring() * 100.0, axis)[None]).float()
    mask = foreground_mask(image, rule)  # crashed: "smaller than kernel size"
    assert tuple(mask.shape) == tuple(-(-n // 4) for n in image.shape[1:])
    window = [16, 16, 16]
    window[axis] = 1
    margin = crop_margin(window)
    assert margin[axis] == 0
    box = foreground_box(mask, image.shape[1:], margin, window)
    assert box[axis] == slice(0, 1)
    padded, pad = pad_to_window(image, window)
    assert padded.shape[1 + axis] == 1 and len(pad) == 6


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("crop", [True, False])
def test_sliding_window_over_one_slice(axis: int, crop: bool) -> None:
    """A 2D model on a one-slice volume, with and without the foreground crop and skipping (which
    may drop a lone pixel far from the foreground: no speck here)."""
    ring = _ring(speck=False).astype(np.float32)
    image = torch.from_numpy(np.expand_dims(ring * 100.0, axis)[None])
    window = [12, 12, 12]
    window[axis] = 1
    settings = WindowSettings(tuple(window), 2, axis, 0.25, "gaussian", 2, crop, crop)  # type: ignore[arg-type]

    def network(x: torch.Tensor) -> torch.Tensor:  # class 1 where bright
        return torch.cat([50 - x, x - 50], dim=1)

    probs = predict_probabilities(network, image, settings, num_classes=2)
    labels = probs.argmax(0).numpy()
    np.testing.assert_array_equal(labels, np.expand_dims(ring, axis))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_postprocessing_on_one_slice(axis: int) -> None:
    ring = _ring()
    flat = np.expand_dims(ring, axis)
    filled = fill_holes(flat)
    assert filled.sum() > flat.sum() and np.squeeze(filled, axis)[11, 12] == 1  # hole filled
    largest = keep_largest_component(flat, [1])
    assert largest.sum() == flat.sum() - 1  # the speck is gone, the ring kept
    kept = remove_small_components(flat, spacing=(1.0, 1.0, 1.0), min_volume_mm3=2.0)
    assert kept.sum() == flat.sum() - 1


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_surface_metrics_of_one_slice_equal_2d(axis: int) -> None:
    pred = _ring()
    ref = np.roll(pred, 2, axis=1)
    spacing_2d = (0.5, 0.8)
    expected = compute_class_metrics(pred, ref, spacing=spacing_2d)
    spacing = list(spacing_2d)
    spacing.insert(axis, 3.0)
    got = compute_class_metrics(
        np.expand_dims(pred, axis), np.expand_dims(ref, axis), spacing=tuple(spacing)
    )
    for name in ("hd_mm", "hd95_mm", "assd_mm", "nsd", "dice"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name)), name
    assert got.volume_ref_mm3 == pytest.approx(expected.volume_ref_mm3 * 3.0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_preview_shows_the_whole_slice(tmp_path: Path, axis: int) -> None:
    from PIL import Image

    ring = _ring()
    flat = np.expand_dims(ring, axis)
    assert preview_axis(flat.shape) == axis
    write_preview(flat * 100.0, flat, tmp_path / "p.png")
    panel = _panel_size(ring.shape, (1.0, 1.0))  # the whole 24 x 30 slice, enlarged
    assert sorted(panel) == [320, 400]
    with Image.open(tmp_path / "p.png") as img:  # one panel, its header and legend below it
        assert img.width == panel[0] and panel[1] < img.height < panel[1] + 80


@pytest.mark.parametrize("kind", ["png_grey", "png_rgb", "tiff", "nifti_one_slice"])
def test_oracle_predictions_sit_on_the_source_pixels(
    tmp_path: Path, kind: str, oracle_2d: Callable[[Path], object]
) -> None:
    """Images whose intensity is 100 x label: the predicted label map must be the mask itself,
    pixel for pixel, after resampling to a coarser grid and back."""
    root = write_2d_dataset(tmp_path / "data", kind, n_cases=2, encoded=True)
    predictor, manifest_path = oracle_2d(root)
    manifest = load_manifest(manifest_path)
    channels = predictor.resolved.plan.channels
    for n, inputs in enumerate(([manifest_path], [root / "images"])):
        out = tmp_path / f"out_{n}"
        cases = cases_from_inputs(inputs, channels=channels)
        results = list(predict_cases(predictor, cases, out, BatchOptions()))
        assert all(r.status == "done" for r in results), [r.error for r in results]
        for case in manifest.cases:
            pred = read_nifti(out / f"{case.case_id}.nii.gz")
            label = manifest.read_label(case)
            source = read_volume(case.images[channels[0]], root=manifest.root)
            np.testing.assert_allclose(pred.affine, source.affine, atol=1e-6)
            np.testing.assert_array_equal(pred.array, label.array)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_report_diameters_of_one_slice(axis: int) -> None:
    """RECIST axes and the longest diameter are measured in the slice's own plane."""
    from medseg.reports.diameters import inplane_axes_along, longest_diameter, surface_voxels

    yy, xx = np.mgrid[:40, :50]
    ellipse = ((yy - 20) / 15.0) ** 2 + ((xx - 25) / 10.0) ** 2 < 1  # 29 x 19 px across
    mask = np.expand_dims(ellipse, axis)
    linear = np.diag(np.insert([0.5, 0.5], axis, 2.0))
    assert len(surface_voxels(mask)) == len(surface_voxels(ellipse))  # the outline only
    axes = inplane_axes_along(mask, linear, axis)
    assert axes.long_mm == pytest.approx(14.0, abs=0.6) and axes.short_mm == pytest.approx(
        9.0, abs=0.6
    )
    assert all(end[axis] == 0 for end in (*axes.long_ends, *axes.short_ends))
    assert longest_diameter(mask, linear).length_mm == pytest.approx(axes.long_mm, abs=0.5)


def test_fingerprint_of_one_slice_images(tmp_path: Path) -> None:
    from medseg.manifest.build import build_manifest
    from medseg.manifest.fingerprint import compute_fingerprint

    root = write_2d_dataset(tmp_path / "d", "nifti_one_slice", n_cases=3)
    built = build_manifest(
        root / "images",
        tmp_path / "m.json",
        labels_dir=root / "labels",
        n_folds=1,
        lesion_labels=[1],
    ).manifest
    built._location = (tmp_path / "m.json").resolve()
    fingerprint = compute_fingerprint(built)
    assert all(shape[1] == 1 for shape in fingerprint.shapes)  # oriented: the coronal slice
    assert fingerprint.lesions["1"].n_lesions == 3  # one disk per image


def test_one_slice_image_in_another_plane_fails_alone(
    tmp_path: Path, oracle_2d: Callable[[Path], object]
) -> None:
    """A 2D model of coronal one-slice NIfTIs given an axial PNG: that case fails, clearly."""
    root = write_2d_dataset(tmp_path / "data", "nifti_one_slice", n_cases=2, encoded=True)
    predictor, _ = oracle_2d(root)
    other = write_2d_dataset(tmp_path / "png", "png_grey", n_cases=1, encoded=True)
    inputs = [root / "images" / "P0_img.nii.gz", other / "images" / "P0_img.png"]
    results = list(
        predict_cases(predictor, cases_from_inputs(inputs), tmp_path / "out", BatchOptions())
    )
    assert [r.status for r in results] == ["done", "failed"]
    assert "slices along axis 1" in (results[1].error or "")
