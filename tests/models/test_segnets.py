"""FCN and DeepLabv3+ networks: shapes the plan allows, anisotropy, upsampling, tracing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medseg.config.plan import divisor, plan_divisible, plan_workflow
from medseg.config.schema import ResolvedWorkflow, WorkflowConfig
from medseg.manifest.schema import Manifest
from medseg.models.deeplab import DeepLabV3Plus
from medseg.models.fcn import FCN, _bilinear_up
from medseg.models.registry import build_model
from tests.helpers import uniform_fingerprint

MANIFEST = Manifest(name="m", labels={"0": "background", "1": "a", "2": "b"})
ARCHS = ["fcn", "deeplabv3plus"]


def _resolved(
    name: str,
    dims: str,
    patch: list[int],
    spacing: tuple[float, float, float],
    options: dict[str, Any] | None = None,
) -> ResolvedWorkflow:
    config = WorkflowConfig(
        name="x",
        manifest="m.json",
        task={"dims": dims},
        model={"name": name, "base_filters": 4, "max_filters": 16, "options": options or {}},
        train={"patch_size": patch},
    )
    return plan_workflow(config, uniform_fingerprint((96, 96, 40), spacing), MANIFEST)


def _logits(model: nn.Module, shape: list[int]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(1, 1, *shape))


# (dims, spacing, patch): anisotropic 3D with a short coarse axis (never strided, so any size is
# allowed along it: 7), and OCT-like 2D whose axes pool a different number of times; the other
# sizes are odd multiples of the divisor (odd feature maps at the deepest level).
SHAPES = [
    ("3d", (0.8, 0.8, 5.0), [48, 80, 7]),
    ("2d", (0.011, 0.0039, 0.12), [48, 80]),
]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize(("dims", "spacing", "patch"), SHAPES, ids=["3d", "2d"])
def test_output_shape_equals_input_for_sizes_the_plan_allows(
    name: str, dims: str, spacing: tuple[float, float, float], patch: list[int]
) -> None:
    resolved = _resolved(name, dims, patch, spacing)
    assert plan_divisible(resolved)
    div = divisor(resolved.model.strides)
    assert any((p // d) % 2 == 1 for p, d in zip(patch, div))  # an odd deepest feature map
    if dims == "3d":
        assert div[2] == 1  # the 7-slice coarse axis is never strided
    out = _logits(build_model(resolved), patch)
    assert out.shape == (1, 3, *patch) and torch.isfinite(out).all()


def test_segresnet_runs_on_the_patch_its_plan_gives() -> None:
    config = WorkflowConfig(
        name="x", manifest="m.json", model={"name": "segresnet", "base_filters": 8}
    )
    resolved = plan_workflow(config, uniform_fingerprint((40, 40, 20), (2.0, 2.0, 3.0)), MANIFEST)
    assert resolved.patch_size == [40, 40, 24]
    assert _logits(build_model(resolved), resolved.patch_size).shape == (1, 3, 40, 40, 24)


def test_deeplab_accepts_sizes_not_divisible_by_the_output_stride() -> None:
    resolved = _resolved("deeplabv3plus", "2d", [48, 80], (1.0, 1.0, 3.0), {"output_stride": 8})
    assert _logits(build_model(resolved), [37, 29]).shape == (1, 3, 37, 29)


def _convs(model: nn.Module) -> list[nn.Conv3d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv3d)]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_never_strides_or_dilates_a_coarse_short_axis(output_stride: int) -> None:
    resolved = _resolved(
        "deeplabv3plus", "3d", [64, 64, 5], (0.8, 0.8, 6.0), {"output_stride": output_stride}
    )
    model = build_model(resolved)
    convs = _convs(model)
    assert all(c.stride[2] == 1 and c.dilation[2] == 1 for c in convs)
    # z at 6 mm: kernel 1 while in-plane voxels are under 3 mm (the stem), 3 once they are 3.2 mm
    assert [k[2] for k in resolved.model.kernels[:3]] == [1, 1, 3]
    assert convs[0].kernel_size == (7, 7, 1) and convs[1].kernel_size == (3, 3, 3)
    dilations = {c.dilation[:2] for c in convs}
    rates = resolved.model.options["aspp_dilations"]
    assert {(r, r) for r in rates} <= dilations  # ASPP dilates in-plane
    layer_rates = [
        {c.dilation for c in _convs(layer) if max(c.kernel_size) > 1}
        for layer in model.encoder.layers  # type: ignore[union-attr]
    ]
    expected = [1, 1, 2, 4] if output_stride == 8 else [1, 1, 1, 2]
    assert layer_rates == [{(r, r, 1)} for r in expected]
    assert _logits(model, [64, 64, 5]).shape == (1, 3, 64, 64, 5)


def test_fcn_never_pools_a_coarse_short_axis() -> None:
    model = build_model(_resolved("fcn", "3d", [64, 64, 5], (0.8, 0.8, 6.0)))
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool3d)]
    assert len(pools) == 4 and all(p.stride[2] == 1 and p.kernel_size[2] == 1 for p in pools)  # type: ignore[index]
    assert all(c.kernel_size[2] == 1 for c in _convs(model.stages[0]))  # type: ignore[arg-type]


def test_fcn_starts_as_the_coarse_net_with_linear_upsampling() -> None:
    """Long et al.: skip scores start at zero, learned upsampling at bilinear interpolation."""
    net = FCN(2, 1, 2, [[3, 3]] * 4, [[1, 1]] + [[2, 2]] * 3, [4, 8, 16, 16], head_channels=8)
    assert len(net.skip_scores) == 2
    assert all(not p.detach().any() for p in net.skip_scores.parameters())
    up = _bilinear_up(2, 1, [2, 2])
    x = torch.randn(1, 1, 8, 6)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    got = up(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])  # borders: zero pad
    anisotropic = _bilinear_up(3, 1, [2, 2, 1])(torch.randn(1, 1, 4, 4, 3))
    assert anisotropic.shape == (1, 1, 8, 8, 3)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ARCHS)
def test_traced_network_has_no_size_baked_in(name: str) -> None:
    """Export-friendly: a trace at one size gives the eager result at another (no Python
    control flow on shapes or values in ``forward``)."""
    resolved = _resolved(name, "3d", [32, 32, 8], (1.0, 1.0, 1.0))
    model = build_model(resolved).eval()
    traced = torch.jit.trace(model, torch.randn(1, 1, 32, 32, 8))
    x = torch.randn(1, 1, 48, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


def test_deeplab_constructor_checks_the_stage_count() -> None:
    with pytest.raises(ValueError, match="output stride 8 needs 4 stride and kernel rows"):
        DeepLabV3Plus(
            2, 1, 2, [[3, 3]] * 5, [[1, 1]] + [[2, 2]] * 4, [4, 8, 16, 32], output_stride=8
        )
