"""Prediction previews: a montage of the slices with the most foreground, enlarged, with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.drawing import colour_of, rgb
from medseg.inference.preview import best_slices, montage, write_preview


def test_best_slices_are_the_fullest_in_index_order() -> None:
    labels = np.zeros((8, 8, 10), np.uint8)
    for k, n in {1: 3, 4: 9, 6: 1, 7: 5, 9: 2}.items():
        labels[:n, 0, k] = 1
    assert best_slices(labels) == [1, 4, 7, 9]
    assert best_slices(np.zeros((4, 4, 6), np.uint8)) == [3]  # nothing: the middle slice


def test_small_ct_is_enlarged_with_class_colours_and_legend(tmp_path: Path) -> None:
    image = np.random.default_rng(0).normal(0, 50, (40, 40, 20)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[10:30, 10:30, 5:12] = 1
    labels[15:20, 15:20, 8:10] = 2
    picture = montage(image, labels, label_names={1: "organ", 2: "lesion"}, spacing=(1, 1, 3))
    assert picture.width >= 2 * 320 and picture.height >= 2 * 320  # 2 x 2 panels, readable
    pixels = {tuple(p) for p in np.asarray(picture).reshape(-1, 3)[::7]}
    legend = np.asarray(picture)[-20:]  # the legend strip: pure class colours in swatches
    for value in (1, 2):
        assert (legend.reshape(-1, 3) == rgb(colour_of(value))).all(axis=1).any()
    assert len(pixels) > 50
    path = write_preview(image, labels, tmp_path / "p.png", label_names={1: "organ"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flat_oct_bscans_are_stretched_to_two_to_one() -> None:
    labels = np.zeros((256, 160, 5), np.uint8)
    labels[100:120, 80:90, 2] = 1
    picture = montage(np.zeros(labels.shape, np.float32), labels, spacing=(0.033, 0.012, 0.24))
    assert picture.width == 640  # one panel, widest side capped
    assert 320 <= picture.height - 26 <= 400  # 2:1 panel + header + legend, not a 640 x 145 strip
