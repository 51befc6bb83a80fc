"""Planning Mask R-CNN workflows: divisible patches, no auto left, lesion labels required."""

from __future__ import annotations

import pytest

from medseg.config.plan import describe_plan, plan_divisible, plan_workflow
from medseg.config.plan_maskrcnn import size_divisible
from medseg.config.schema import WorkflowConfig, find_auto
from medseg.errors import ConfigError
from medseg.manifest.schema import Manifest
from tests.helpers import uniform_fingerprint


def _manifest(lesions: list[int]) -> Manifest:
    labels = {"0": "background", "1": "organ", "2": "lesion"}
    return Manifest(name="m", labels=labels, lesion_labels=lesions)


def _workflow(dims: str = "3d", **train: object) -> WorkflowConfig:
    return WorkflowConfig(
        name="x",
        manifest="m.json",
        task={"kind": "instance", "dims": dims},
        model={"name": "maskrcnn"},
        train=train,
    )


@pytest.mark.parametrize(
    ("dims", "shape", "patch"),
    [("3d", (96, 96, 48), [96, 96, 64]), ("2d", (768, 496, 49), [640, 384])],
)
def test_auto_patch_is_divisible_and_nothing_is_left_auto(
    dims: str, shape: tuple[int, int, int], patch: list[int]
) -> None:
    spacing = (1.6, 1.6, 3.0) if dims == "3d" else (0.011, 0.0039, 0.12)
    resolved = plan_workflow(_workflow(dims), uniform_fingerprint(shape, spacing), _manifest([2]))
    assert resolved.patch_size == patch and plan_divisible(resolved)
    assert find_auto(resolved.model_dump(exclude={"plan"})) == []
    assert resolved.model.kernels == [] and resolved.model.strides == []
    assert resolved.batch_size == (2 if dims == "3d" else 4)
    assert ("size divisible", "32") in describe_plan(resolved)


def test_explicit_patch_must_be_divisible() -> None:
    fingerprint = uniform_fingerprint((96, 96, 48), (1.6, 1.6, 3.0))
    resolved = plan_workflow(_workflow(patch_size=[64, 64, 32]), fingerprint, _manifest([2]))
    assert resolved.patch_size == [64, 64, 32]
    with pytest.raises(ConfigError, match=r"multiples of 32.*\[96, 96, 48\]") as err:
        plan_workflow(_workflow(patch_size=[96, 96, 48]), fingerprint, _manifest([2]))
    assert "[96, 96, 64]" in str(err.value.hint)


def test_maskrcnn_needs_lesion_labels() -> None:
    with pytest.raises(ConfigError, match="declares none"):
        plan_workflow(
            _workflow(), uniform_fingerprint((64, 64, 32), (1.0, 1.0, 1.0)), _manifest([])
        )


@pytest.mark.parametrize("layers", [(1, 2, 3), (1, 2), (2, 3, 4)])
def test_size_divisible_mirrors_the_network(layers: tuple[int, ...]) -> None:
    from medseg.models.maskrcnn import build_maskrcnn

    model = build_maskrcnn(2, 1, 2, returned_layers=layers, backbone_depth=10, fpn_channels=8)
    assert size_divisible({"returned_layers": list(layers)}) == model.size_divisible
