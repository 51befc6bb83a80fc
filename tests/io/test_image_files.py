"""2D image files: pixel values, colour, pages and the pixel-spacing rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.errors import DataError
from medseg.io.image_files import ImageFileRef, read_image_file
from medseg.io.read import read_volume

GREY = (np.arange(12 * 20).reshape(12, 20) % 251).astype(np.uint8)  # rows x columns


def test_grey_png_is_a_one_slice_volume_on_its_pixel_grid(tmp_path: Path) -> None:
    Image.fromarray(GREY).save(tmp_path / "a.png")
    volume = read_volume(tmp_path / "a.png")
    assert volume.shape == (20, 12, 1)  # (columns, rows, 1)
    np.testing.assert_array_equal(volume.array[:, :, 0].T, GREY)
    assert volume.meta["spacing_source"] == "unknown" and volume.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(volume.voxel_to_lps([[3, 5, 0]]), [[3.0, 5.0, 0.0]])


def test_colour_components_and_luma(tmp_path: Path) -> None:
    rgb = np.stack([GREY, 255 - GREY, np.full_like(GREY, 7)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(np.stack([GREY] * 3, axis=-1)).save(tmp_path / "grey_as_rgb.png")
    luma = read_volume(tmp_path / "c.png")
    assert luma.meta["colour"]
    expected = 0.299 * GREY + 0.587 * (255 - GREY.astype(float)) + 0.114 * 7
    np.testing.assert_allclose(luma.array[:, :, 0].T, expected, rtol=1e-5)
    for k, channel in enumerate((GREY, 255 - GREY, np.full_like(GREY, 7))):
        part = read_volume(ImageFileRef(path=str(tmp_path / "c.png"), component=k))
        np.testing.assert_array_equal(part.array[:, :, 0].T, channel)
    same = read_volume(tmp_path / "grey_as_rgb.png")
    assert not same.meta["colour"] and same.array.dtype == np.uint8


def test_palette_masks_give_indices_grey_palettes_give_grey(tmp_path: Path) -> None:
    labels = (GREY % 3).astype(np.uint8)
    mask = Image.fromarray(labels, mode="P")
    mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 253)
    mask.save(tmp_path / "mask.png")
    ramp = Image.fromarray(GREY, mode="P")
    ramp.putpalette([v for i in range(256) for v in (i, i, i)])
    ramp.save(tmp_path / "ramp.gif")
    assert read_volume(tmp_path / "mask.png").meta["palette"]
    np.testing.assert_array_equal(read_volume(tmp_path / "mask.png").array[:, :, 0].T, labels)
    np.testing.assert_array_equal(read_volume(tmp_path / "ramp.gif").array[:, :, 0].T, GREY)


def test_spacing_rules(tmp_path: Path) -> None:
    Image.fromarray(GREY).save(tmp_path / "dpi300.png", dpi=(300, 300))
    Image.fromarray(GREY).save(tmp_path / "dpi72.png", dpi=(72, 72))
    tifffile.imwrite(
        tmp_path / "cm.tif", GREY, resolution=(40, 20), resolutionunit="CENTIMETER"
    )  # x: 40 px/cm = 0.25 mm columns, y: 20 px/cm = 0.5 mm rows
    Image.fromarray(GREY).save(tmp_path / "side.png", dpi=(300, 300))
    (tmp_path / "side.json").write_text(json.dumps({"pixel_spacing_mm": [0.02, 0.01]}))
    file_spacing = read_volume(tmp_path / "dpi300.png")
    assert file_spacing.meta["spacing_source"] == "file"
    np.testing.assert_allclose(file_spacing.spacing[:2], (25.4 / 300, 25.4 / 300), rtol=1e-3)
    assert read_volume(tmp_path / "dpi72.png").meta["spacing_source"] == "unknown"
    tiff = read_volume(tmp_path / "cm.tif")
    np.testing.assert_allclose(tiff.spacing, (0.25, 0.5, 1.0))
    side = read_volume(tmp_path / "side.png")  # the sidecar beats the file
    assert side.meta["spacing_source"] == "sidecar"
    np.testing.assert_allclose(side.spacing, (0.01, 0.02, 1.0))  # (column, row, slice)
    given = read_image_file(tmp_path / "side.png", pixel_spacing_mm=(0.3, 0.4))  # caller wins
    np.testing.assert_allclose(given.spacing, (0.4, 0.3, 1.0))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="bad.png"):
        read_volume(tmp_path / "bad.png")


def test_tiff_pages_16_bit_colour_and_float(tmp_path: Path) -> None:
    pages = np.stack([GREY, GREY[::-1]]).astype(np.uint16) * 200
    tifffile.imwrite(tmp_path / "pages.tif", pages)
    rgb16 = (np.random.default_rng(0).random((12, 20, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    tifffile.imwrite(tmp_path / "float.tif", GREY.astype(np.float32) / 7)
    stack = read_volume(tmp_path / "pages.tif")
    assert stack.shape == (20, 12, 2)
    np.testing.assert_array_equal(stack.array[:, :, 1].T, pages[1])
    blue = read_volume(ImageFileRef(path=str(tmp_path / "rgb16.tif"), component=2))
    np.testing.assert_array_equal(blue.array[:, :, 0].T, rgb16[..., 2])  # all 16 bits kept
    np.testing.assert_allclose(
        read_volume(tmp_path / "float.tif").array[:, :, 0].T, GREY / 7, rtol=1e-6
    )
