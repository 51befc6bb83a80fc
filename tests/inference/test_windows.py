"""Sliding windows: exact mode equals MONAI; the foreground crop never drops the anatomy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import SliceInferer, sliding_window_inference

from medseg.inference.windows import (
    WindowSettings,
    crop_margin,
    foreground_box,
    foreground_mask,
    scan_interval,
    sliding_window_logits,
    window_count,
)
from medseg.io.read import read_volume
from medseg.synth.truth import Truth


def _net(dims: int) -> torch.nn.Module:
    """A small conv net whose output depends on position within the window (zero padding)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
    return torch.nn.Sequential(
        conv(1, 4, 3, padding=1), torch.nn.ReLU(), conv(4, 3, 5, padding=2)
    ).eval()


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_exact_mode_equals_monai_3d(blend: str) -> None:
    net = _net(3)
    image = torch.randn(1, 37, 29, 21)
    settings = WindowSettings((16, 16, 16), 3, 2, 0.5, blend, 3, False, False)
    with torch.no_grad():
        ours, covered = sliding_window_logits(net, image, settings, num_classes=3)
        theirs = sliding_window_inference(
            image[None], (16, 16, 16), 3, net, overlap=0.5, mode=blend
        )[0]
    assert covered.all()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_exact_mode_equals_monai_2d_slices_and_small_images() -> None:
    net = _net(2)
    image = torch.randn(1, 50, 12, 5)  # the second axis is smaller than the window: padded
    settings = WindowSettings((32, 16, 1), 2, 2, 0.25, "gaussian", 4, False, False)
    inferer = SliceInferer(
        roi_size=(32, 16), sw_batch_size=4, spatial_dim=2, overlap=0.25, mode="gaussian"
    )
    with torch.no_grad():
        ours, _ = sliding_window_logits(net, image, settings, num_classes=3)
        theirs = inferer(image[None], net)[0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "rule", "window"), [("ct", "above_min", (32, 32, 16)), ("oct", "otsu", (64, 32, 1))]
)
def test_foreground_box_keeps_every_lesion(
    kind: str, rule: str, window: tuple[int, int, int], synth_dir: Callable[..., Path]
) -> None:
    root = synth_dir(kind, "nifti", patients=2)
    for case in Truth.load(root / "truth.json").cases:
        image = read_volume(case.image, root=root).array.astype(np.float32)
        label = read_volume(case.label, root=root).array
        # the CT pipeline clips intensities to the foreground range first; OCT is z-scored
        normalise = {
            "ct": lambda a: np.clip(a, 10.0, 90.0),
            "oct": lambda a: (a - a.mean()) / a.std(),
        }
        image = normalise[kind](image)
        tensor = torch.from_numpy(image)[None]
        mask = foreground_mask(tensor, rule)
        interval = scan_interval(image.shape, window, 0.25)
        full = foreground_box(mask, image.shape, crop_margin(window), window)
        lean = foreground_box(mask, image.shape, crop_margin(window), window, interval)
        for box in (full, lean):
            inside = np.zeros(label.shape, bool)
            inside[box] = True
            assert not (label[~inside] > 0).any(), f"{case.case_id}: labels outside the crop"
            assert inside.mean() < 0.95  # and the crop does remove something
        for axis, (a, b) in enumerate(zip(full, lean)):  # lean: inside full, never more windows
            assert a.start <= b.start and b.stop <= a.stop
            n = window_count(b.stop - b.start, min(window[axis], image.shape[axis]), interval[axis])
            assert n <= window_count(
                a.stop - a.start, min(window[axis], image.shape[axis]), interval[axis]
            )


@pytest.mark.parametrize("window", [16, 32, 48])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.625])
def test_window_count_matches_monai(window: int, overlap: float) -> None:
    for length in range(1, 130):
        size = (max(length, window), 1, 1)
        interval = scan_interval(size, (window, 1, 1), overlap)
        slices = dense_patch_slices(size, (window, 1, 1), interval)
        assert window_count(size[0], window, interval[0]) == len(slices), (length, window)
