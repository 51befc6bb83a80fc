"""Planning FCN and DeepLabv3+: topology per architecture, checked options, no deep supervision."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from medseg.config.load import load_workflow
from medseg.config.plan import describe_plan, divisor, plan_divisible, plan_workflow
from medseg.config.plan_archs import resolve_options
from medseg.config.schema import ResolvedWorkflow, WorkflowConfig, find_auto
from medseg.errors import ConfigError
from medseg.manifest.fingerprint import Fingerprint
from medseg.manifest.schema import Manifest
from tests.helpers import uniform_fingerprint

MANIFEST = Manifest(name="m", labels={"0": "background", "1": "organ", "2": "lesion"})
CT = uniform_fingerprint((160, 160, 48), (0.8, 0.8, 4.0))


def _plan(
    name: str,
    options: dict[str, Any] | None = None,
    fingerprint: Fingerprint = CT,
    **sections: Any,
) -> ResolvedWorkflow:
    config = WorkflowConfig(
        name="x",
        manifest="m.json",
        model={"name": name, "base_filters": 8, "options": options or {}},
        **sections,
    )
    return plan_workflow(config, fingerprint, MANIFEST)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_has_one_stride_row_per_downsampling_stage(output_stride: int) -> None:
    resolved = _plan("deeplabv3plus", {"output_stride": output_stride})
    strides = resolved.model.strides
    assert len(strides) == int(math.log2(output_stride)) + 1 and strides[0] == [1, 1, 1]
    assert len(resolved.model.kernels) == len(strides)
    assert strides[1] == [2, 2, 1] and resolved.model.kernels[0] == [3, 3, 1]  # coarse z first
    assert plan_divisible(resolved) and find_auto(resolved.model_dump(exclude={"plan"})) == []
    assert not resolved.model.deep_supervision and resolved.model.deep_supervision_levels == 0
    options = resolved.model.options
    assert options["output_stride"] == output_stride and options["backbone_depth"] == 18
    assert options["aspp_dilations"] == ([2, 4, 6] if output_stride == 16 else [4, 8, 12])
    assert options["aspp_channels"] == 32 and options["low_level_channels"] == 12  # base 8


def test_deeplab_pads_stages_when_the_patch_is_too_small_to_stride() -> None:
    resolved = _plan("deeplabv3plus", train={"patch_size": [32, 32, 8]})
    strides = resolved.model.strides
    assert len(strides) == 5 and strides[-1] == [
        1,
        1,
        1,
    ]  # 32 x 32 x 8 -> 4 x 4 x 4 after three stages: stop
    assert divisor(strides) == [8, 8, 2] and plan_divisible(resolved)


def test_fcn_pools_at_most_five_times_and_fills_its_options() -> None:
    resolved = _plan("fcn", fingerprint=uniform_fingerprint((512, 512, 512), (1.0, 1.0, 1.0)))
    assert len(resolved.model.strides) == 6  # a U-Net here would also stop at 5 in 3D
    two_d = _plan(
        "fcn",
        task={"dims": "2d"},
        fingerprint=uniform_fingerprint((1024, 1024, 3), (0.5, 0.5, 5.0)),
    )
    assert len(two_d.model.strides) == 6  # 2D U-Nets may pool 6 times, FCN 5 (stride 32)
    assert two_d.model.options == {
        "skips": 2,
        "convs_per_level": 2,
        "head_channels": 256,  # the deepest level's width: 8 * 2**5
        "dropout": 0.0,
        "norm": "instance",
    }
    assert not two_d.model.deep_supervision and plan_divisible(two_d)


def test_fcn_default_skips_shrink_to_the_levels_an_explicit_excess_is_refused() -> None:
    small = {"patch_size": [6, 6, 6]}  # no room to pool: one level, no skip possible
    assert _plan("fcn", train=small).model.options["skips"] == 0
    with pytest.raises(ConfigError, match=r"skips: this plan has 1 levels, so at most 0"):
        _plan("fcn", {"skips": 2}, train=small)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("deeplabv3plus", {"outputstride": 8}, "unknown deeplabv3plus option 'outputstride'"),
        ("deeplabv3plus", {"output_stride": 32}, r"output_stride: deeplabv3plus expects 8 or 16"),
        ("deeplabv3plus", {"output_stride": "16"}, r"expects 8 or 16, got '16'"),
        ("deeplabv3plus", {"backbone_depth": 101}, r"expects one of \(10, 18, 34, 50\)"),
        ("deeplabv3plus", {"aspp_dilations": [2, 0]}, "aspp_dilations"),
        ("deeplabv3plus", {"image_pooling": "yes"}, "image_pooling: deeplabv3plus expects true"),
        ("fcn", {"skips": 3}, r"skips: fcn expects 0 \(FCN-32s\)"),
        ("fcn", {"norm": "layer"}, "norm: fcn expects one of"),
        ("fcn", {"dropout": 1.5}, r"dropout: fcn expects a fraction in \[0, 1\)"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _plan(name, options)


def test_unknown_option_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_options("deeplabv3plus", {"aspp_dilation": [1]}, base=8)
    assert err.value.hint == "did you mean 'aspp_dilations'?"


def test_hand_written_strides_must_fit_the_network() -> None:
    model = {"kernels": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]]}
    with pytest.raises(ConfigError, match="expects 5 rows of 1s and 2s"):
        _plan_with_model("deeplabv3plus", model)
    with pytest.raises(ConfigError, match="first row must be all ones"):
        _plan_with_model("fcn", {"kernels": [[3, 3, 3]] * 2, "strides": [[2, 2, 2]] * 2})
    with pytest.raises(ConfigError, match="odd positive sizes"):
        _plan_with_model("fcn", {"kernels": [[2, 3, 3]] * 2, "strides": [[1, 1, 1], [2, 2, 2]]})


def _plan_with_model(name: str, model: dict[str, Any]) -> ResolvedWorkflow:
    config = WorkflowConfig(name="x", manifest="m.json", model={"name": name, **model})
    return plan_workflow(config, CT, MANIFEST)


def test_plan_table_says_deep_supervision_is_off() -> None:
    rows = dict(describe_plan(_plan("deeplabv3plus")))
    assert rows["deep supervision"] == "off (deeplabv3plus has no deep-supervision heads)"
    assert rows["architecture"].startswith("ResNet-18, output stride 16, ASPP rates [2, 4, 6]")
    assert dict(describe_plan(_plan("fcn")))["deep supervision"].startswith("off (fcn")
    unet = dict(describe_plan(_plan("dynunet")))
    assert unet["deep supervision"].startswith("on, ") and "architecture" not in unet


def test_workflow_yaml_selects_the_network(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "schema_version: 1\nname: dl\nmanifest: m.json\n"
        "model: {name: deeplabv3plus, options: {output_stride: 8, backbone_depth: 34}}\n"
    )
    config = load_workflow(path)
    assert config.model.name == "deeplabv3plus" and config.model.options["output_stride"] == 8
    with pytest.raises(ConfigError, match="model.name"):
        load_workflow(path, ["model.name=deeplab"])


def test_segresnet_patch_is_divisible_by_its_isotropic_downsampling() -> None:
    """SegResNet halves every axis 3 times whatever the spacing: 20 slices would not fit."""
    tiny_ct = uniform_fingerprint((40, 40, 20), (2.0, 2.0, 3.0))
    resolved = _plan("segresnet", fingerprint=tiny_ct)
    assert resolved.model.strides == [[1, 1, 1]] + [[2, 2, 2]] * 3
    assert resolved.patch_size == [40, 40, 24] and plan_divisible(resolved)
    shallow = _plan("segresnet", {"blocks_down": [1, 2]}, fingerprint=tiny_ct)
    assert shallow.model.strides == [[1, 1, 1], [2, 2, 2]] and shallow.patch_size == [40, 40, 20]


def test_explicit_patch_not_divisible_by_the_network_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"multiple of it, got \[40, 40, 20\]") as err:
        _plan("segresnet", train={"patch_size": [40, 40, 20]})
    assert err.value.hint == "use [40, 40, 16], or patch_size: auto"  # 20: 16 and 24 tie
    with pytest.raises(ConfigError, match="downsamples each axis by"):
        _plan("dynunet", train={"patch_size": [36, 36, 9]})  # 9 slices are pooled once
