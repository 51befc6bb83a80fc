"""Label values of image masks -> the data set's labels (documented rule), through build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ConfigError
from medseg.manifest.build import build_manifest
from medseg.manifest.label_values import apply_label_mapping, decide_label_mapping
from tests.data2d import write_2d_dataset


@pytest.mark.parametrize(
    ("values", "declared", "expected"),
    [
        ({0, 255}, None, {255: 1}),
        ({0, 1, 2}, None, {}),
        ({0, 1, 2}, [1, 2], {}),
        ({0, 128, 255}, [1, 2], {128: 1, 255: 2}),
        ({0, 255}, [3], {255: 3}),
        ({0, 2}, [1, 2], {}),  # a subset of the declared labels
    ],
)
def test_mapping_rule(values: set[int], declared: list[int] | None, expected: dict) -> None:
    assert decide_label_mapping(values, declared) == expected


def test_values_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"values \[1, 255\]"):
        decide_label_mapping({0, 1, 255}, [1])
    with pytest.raises(ConfigError, match="lossless"):
        decide_label_mapping(set(range(200)), None)


def test_jpeg_masks_are_binary() -> None:
    mapping = decide_label_mapping({0, 3, 100, 128, 200, 255}, None, lossy=True)
    assert mapping[3] == mapping[127] == 0 and mapping[128] == mapping[255] == 1
    noisy = np.array([[0, 3, 127], [128, 254, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(apply_label_mapping(noisy, mapping), [[0, 0, 0], [1, 1, 1]])


def test_build_maps_0_255_masks_and_reads_them_on_the_image_grid(tmp_path: Path) -> None:
    root = write_2d_dataset(tmp_path / "d", "png_grey", n_cases=2)
    result = build_manifest(
        root / "images", tmp_path / "m.json", labels_dir=root / "labels", n_folds=1
    )
    manifest = result.manifest
    assert manifest.label_mapping == {"255": 1} and manifest.labels == {
        "0": "background",
        "1": "label_1",
    }
    manifest._location = (tmp_path / "m.json").resolve()
    case = manifest.cases[0]
    label, image = manifest.read_label(case), manifest.read_image(case)
    assert set(np.unique(label.array)) == {0, 1}
    np.testing.assert_allclose(label.affine, image.affine)


def test_build_refuses_colour_images_mixed_with_volumes(tmp_path: Path) -> None:
    root = write_2d_dataset(tmp_path / "rgb", "png_rgb", n_cases=2)
    write_2d_dataset(tmp_path / "rgb", "nifti_one_slice", n_cases=1, seed=3)
    with pytest.raises(ConfigError, match="colour images are mixed"):
        build_manifest(root / "images", tmp_path / "m.json", n_folds=1)


def test_mask_of_another_size_is_a_case_error(tmp_path: Path) -> None:
    from medseg.manifest.check import check_manifest

    root = write_2d_dataset(tmp_path / "d", "png_grey", n_cases=2)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "labels" / "P0_img.png")
    result = build_manifest(
        root / "images", tmp_path / "m.json", labels_dir=root / "labels", n_folds=1
    )
    result.manifest._location = (tmp_path / "m.json").resolve()
    checks = {c.case_id: c for c in check_manifest(result.manifest)}
    messages = " ".join(i.message for i in checks["P0_img"].issues)
    assert "label image size" in messages and not checks["P1_img"].issues
