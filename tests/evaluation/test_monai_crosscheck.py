"""medseg's surface metrics equal MONAI's where the definitions agree (all of them here).

MONAI computes distances in float32, hence the 1e-6 relative tolerance. NSD tolerances are chosen
away from lattice distances so float32 rounding cannot flip a comparison.
"""

from __future__ import annotations

import warnings

import monai.metrics as monai_metrics
import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.evaluation.metrics import surface_distances

torch.set_num_threads(1)

RTOL = 1e-6
TOLERANCES_MM = (1.3, 2.9)


def blob(shape: tuple[int, ...], seed: int, fill: float = 0.3) -> np.ndarray:
    """Random smooth blobs (several components, some touching the array border)."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.8)
    return field > fill * field.std()


def monai_values(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict:
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a)[None, None].float()

    kw = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = monai_metrics.compute_hausdorff_distance(t(pred), t(ref), **kw)
        hd95 = monai_metrics.compute_hausdorff_distance(t(pred), t(ref), percentile=95, **kw)
        assd = monai_metrics.compute_average_surface_distance(t(pred), t(ref), symmetric=True, **kw)
        nsd = [
            monai_metrics.compute_surface_dice(t(pred), t(ref), [tol], **kw).item()
            for tol in TOLERANCES_MM
        ]
    return {"hd": hd.item(), "hd95": hd95.item(), "assd": assd.item(), "nsd": nsd}


@pytest.mark.parametrize(
    ("shape", "spacing", "seed"),
    [
        ((28, 22, 14), (0.7, 1.1, 2.3), 0),
        ((28, 22, 14), (0.7, 1.1, 2.3), 1),
        ((20, 26, 18), (1.9, 0.45, 0.8), 2),
        ((40, 34), (0.35, 1.7), 3),
    ],
)
@pytest.mark.parametrize("method", ["edt", "kdtree"])
def test_equal_to_monai(shape: tuple, spacing: tuple, seed: int, method: str) -> None:
    pred, ref = blob(shape, seed), blob(shape, seed + 100)
    assert pred.any() and ref.any()
    ours = surface_distances(pred, ref, spacing=spacing, method=method)
    theirs = monai_values(pred, ref, spacing)
    assert ours.hausdorff_mm() == pytest.approx(theirs["hd"], rel=RTOL)
    assert ours.hausdorff_mm(95) == pytest.approx(theirs["hd95"], rel=RTOL)
    assert ours.assd_mm == pytest.approx(theirs["assd"], rel=RTOL)
    for tol, value in zip(TOLERANCES_MM, theirs["nsd"]):
        assert ours.nsd(tol) == pytest.approx(value, rel=RTOL)


def test_small_lesions_in_a_large_grid_equal_to_monai() -> None:
    """Scattered small masks (the KD-tree path) on an anisotropic CT-like grid."""
    spacing = (0.8, 0.8, 2.5)
    ref = np.zeros((120, 110, 40), bool)
    pred = np.zeros_like(ref)
    for (x, y, z), r in [((15, 20, 5), 3), ((90, 80, 30), 4), ((60, 15, 20), 2)]:
        ref[x - r : x + r, y - r : y + r, z - 1 : z + 2] = True
        pred[x - r + 1 : x + r + 1, y - r : y + r - 1, z - 1 : z + 1] = True
    pred[100:103, 10:12, 35:37] = True  # a false positive far from everything
    ours = surface_distances(pred, ref, spacing=spacing)
    theirs = monai_values(pred, ref, spacing)
    assert ours.hausdorff_mm(95) == pytest.approx(theirs["hd95"], rel=RTOL)
    assert ours.assd_mm == pytest.approx(theirs["assd"], rel=RTOL)
