"""Validation takes voxel spacing from the image's affine, never assumes 1 mm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.errors import DataError
from medseg.training.validation import voxel_spacing


def test_spacing_from_the_affine_of_a_rotated_anisotropic_image() -> None:
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])  # fmt: skip
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 2.5])
    image = MetaTensor(torch.zeros(1, 4, 4, 4), affine=torch.as_tensor(affine))
    assert voxel_spacing(image) == pytest.approx((0.7, 0.9, 2.5))


def test_no_affine_is_an_error_not_1mm() -> None:
    with pytest.raises(DataError, match="spacing is unknown"):
        voxel_spacing(torch.zeros(1, 4, 4, 4))
