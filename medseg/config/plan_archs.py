"""Per-architecture planning rules (FCN, DeepLabv3+, SegResNet's fixed downsampling); no torch.

Both networks are planned like the U-Net: :func:`medseg.config.plan.topology` decides, from the
target spacing and the patch, which axes are strided at each downsampling stage (an axis much
coarser than the finest, or whose feature map would drop under 8 voxels, is not) and which kernels
are 1 along coarse axes; the patch is divisible by the product of the strides. What differs:

* ``fcn``: at most :data:`FCN_MAX_POOLS` pools (VGG's five, stride 32 as in Long et al. 2015).
* ``deeplabv3plus``: exactly ``log2(output_stride)`` downsampling stages (stem convolution,
  stem max-pool, ResNet layer 2, and layer 3 when the output stride is 16); later ResNet layers
  are dilated instead of strided. When the topology stops early (a small patch) the remaining
  stages get stride 1 on every axis, so ``model.strides`` always has ``log2(output_stride) + 1``
  rows (the first all ones, as for DynUNet).
* neither has deep-supervision heads: ``deep_supervision`` resolves to false, ``levels`` to 0.

``model.options`` are checked here (unknown names, wrong types and ranges raise a
:class:`~medseg.errors.ConfigError` naming the option) and every default is written into the
resolved workflow, so ``resolved_workflow.yaml`` lists the whole network.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medseg.errors import ConfigError

FCN_MAX_POOLS = 5
DEEPLAB_DEPTHS = (10, 18, 34, 50)
NORMS = ("instance", "batch", "group")
ARCHITECTURES = ("fcn", "deeplabv3plus")


@dataclass(frozen=True)
class _Option:
    """One builder option: what a valid value is, and its default given the plan context."""

    expected: str
    valid: Callable[[Any], bool]
    default: Callable[[Mapping[str, Any]], Any]


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    return ok and (high is None or value <= high)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


def _is_rates(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) >= 1 and all(_is_int(v, 1) for v in value)


FCN_OPTIONS: dict[str, _Option] = {
    "skips": _Option(
        "0 (FCN-32s), 1 (FCN-16s) or 2 (FCN-8s)",
        lambda v: _is_int(v, 0, 2),
        lambda ctx: 2,
    ),
    "convs_per_level": _Option("an integer 1-4", lambda v: _is_int(v, 1, 4), lambda ctx: 2),
    "head_channels": _Option(
        "a positive integer", lambda v: _is_int(v, 1), lambda ctx: int(ctx["deepest"])
    ),
    "dropout": _Option("a fraction in [0, 1)", _is_fraction, lambda ctx: 0.0),
    "norm": _Option(f"one of {NORMS}", lambda v: v in NORMS, lambda ctx: "instance"),
}

DEEPLAB_OPTIONS: dict[str, _Option] = {
    "output_stride": _Option("8 or 16", lambda v: v in (8, 16), lambda ctx: 16),
    "backbone_depth": _Option(
        f"one of {DEEPLAB_DEPTHS}", lambda v: v in DEEPLAB_DEPTHS, lambda ctx: 18
    ),
    "aspp_dilations": _Option(
        "a list of positive integers (the dilated 3x3 branches)",
        _is_rates,
        lambda ctx: [2, 4, 6] if ctx["output_stride"] == 16 else [4, 8, 12],
    ),
    "aspp_channels": _Option(
        "a positive integer", lambda v: _is_int(v, 1), lambda ctx: 4 * int(ctx["base"])
    ),
    "image_pooling": _Option("true or false", lambda v: isinstance(v, bool), lambda ctx: True),
    "low_level_channels": _Option(
        "a positive integer", lambda v: _is_int(v, 1), lambda ctx: max(8, 3 * int(ctx["base"]) // 2)
    ),
    "decoder_channels": _Option(
        "a positive integer", lambda v: _is_int(v, 1), lambda ctx: 4 * int(ctx["base"])
    ),
    "dropout": _Option("a fraction in [0, 1)", _is_fraction, lambda ctx: 0.0),
    "norm": _Option(f"one of {NORMS}", lambda v: v in NORMS, lambda ctx: "instance"),
}

OPTIONS = {"fcn": FCN_OPTIONS, "deeplabv3plus": DEEPLAB_OPTIONS}


def is_segmentation_net(name: str) -> bool:
    """Whether ``name`` is planned by this module (``fcn`` or ``deeplabv3plus``)."""
    return name in ARCHITECTURES


def _check_names(name: str, options: Mapping[str, Any]) -> None:
    spec = OPTIONS[name]
    for key in options:
        if key not in spec:
            close = difflib.get_close_matches(str(key), sorted(spec), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid options: {sorted(spec)}"
            raise ConfigError(f"model.options: unknown {name} option {key!r}", hint=hint)


def _check_value(name: str, key: str, value: Any) -> Any:
    option = OPTIONS[name][key]
    if not option.valid(value):
        raise ConfigError(
            f"model.options.{key}: {name} expects {option.expected}, got {value!r}",
            hint=f"remove it to use the default, or see `{name}` in the README's model section",
        )
    return list(value) if isinstance(value, tuple) else value


def resolve_options(
    name: str, options: Mapping[str, Any], *, base: int, deepest: int | None = None
) -> dict[str, Any]:
    """Check ``model.options`` of ``fcn`` / ``deeplabv3plus`` and fill every default.

    Args:
        name: ``"fcn"`` or ``"deeplabv3plus"``.
        options: the workflow's ``model.options``.
        base: resolved ``model.base_filters`` (defaults of channel counts scale with it).
        deepest: FCN: channels the deepest level would have as a U-Net level (the default
            fc6/fc7 width); ``None`` means ``base``.

    Returns:
        Every option of the network with a concrete value (no ``None``).

    Raises:
        ConfigError: an unknown option (with the closest valid name) or an invalid value.

    Example:
        >>> resolve_options("deeplabv3plus", {"output_stride": 8}, base=16)["aspp_dilations"]
        [4, 8, 12]
    """
    _check_names(name, options)
    given = {k: _check_value(name, k, v) for k, v in options.items() if v is not None}
    context: dict[str, Any] = {"base": base, "deepest": deepest or base, **given}
    resolved: dict[str, Any] = {}
    for key, option in OPTIONS[name].items():
        value = given[key] if key in given else option.default({**context, **resolved})
        resolved[key] = value
    return resolved


def max_pools(name: str, options: Mapping[str, Any], default: int) -> int:
    """Largest number of downsampling stages the topology may use for ``name``.

    Raises:
        ConfigError: invalid ``model.options`` (checked here, before any sizing).
    """
    if name == "fcn":
        resolve_options(name, options, base=1)
        return min(default, FCN_MAX_POOLS)
    if name == "deeplabv3plus":
        return _stages(options)
    return default


def _stages(options: Mapping[str, Any]) -> int:
    """DeepLabv3+ downsampling stages: ``log2(output_stride)`` (3 or 4)."""
    stride = resolve_options("deeplabv3plus", options, base=1)["output_stride"]
    return int(math.log2(int(stride)))


def finish_topology(
    name: str,
    options: Mapping[str, Any],
    kernels: list[list[int]],
    strides: list[list[int]],
) -> tuple[list[list[int]], list[list[int]]]:
    """Per-architecture last step of the topology (DeepLabv3+: pad to its fixed stage count).

    SegResNet halves every axis once per entry of ``blocks_down`` after the first (MONAI default
    ``(1, 2, 2, 4)``: 3 times), whatever the spacing: its rows say so, and the patch follows.
    Returns ``kernels`` and ``strides`` unchanged for other networks.
    """
    if name == "segresnet":
        return _segresnet_topology(options, len(strides[0]))
    if name != "deeplabv3plus":
        return kernels, strides
    stages = _stages(options) + 1
    ones = [1] * len(strides[0])
    strides = [list(s) for s in strides] + [ones] * (stages - len(strides))
    kernels = [list(k) for k in kernels] + [list(kernels[-1])] * (stages - len(kernels))
    return kernels, strides


def _segresnet_topology(
    options: Mapping[str, Any], dims: int
) -> tuple[list[list[int]], list[list[int]]]:
    blocks = options.get("blocks_down", (1, 2, 2, 4))
    if not isinstance(blocks, list | tuple) or not blocks:
        raise ConfigError(
            f"model.options.blocks_down: expected a list of block counts, got {blocks!r}"
        )
    return [[3] * dims] * len(blocks), [[1] * dims] + [[2] * dims] * (len(blocks) - 1)


def divisible_patch(patch: Sequence[int], div: Sequence[int], *, explicit: bool) -> list[int]:
    """The patch rounded up to multiples of the network's downsampling ``div`` (per axis).

    Raises:
        ConfigError: an explicit ``train.patch_size`` that is not a multiple (nearest in the hint).

    Example:
        >>> divisible_patch([40, 40, 20], [8, 8, 8], explicit=False)
        [40, 40, 24]
    """
    values = [int(v) for v in patch]
    rounded = [max(d, math.ceil(v / d) * d) for v, d in zip(values, div)]
    if explicit and rounded != values:
        nearest = [max(d, round(v / d) * d) for v, d in zip(values, div)]
        raise ConfigError(
            f"train.patch_size: the network downsamples each axis by {list(div)}, so the patch "
            f"must be a multiple of it, got {values}",
            hint=f"use {nearest}, or patch_size: auto",
        )
    return rounded


def check_topology(
    name: str,
    options: Mapping[str, Any],
    kernels: Sequence[Sequence[int]],
    strides: Sequence[Sequence[int]],
    dims: int,
) -> None:
    """Refuse hand-written ``model.kernels`` / ``model.strides`` the network cannot use.

    Raises:
        ConfigError: wrong lengths, a first stride other than ones, strides other than 1 or 2
            (DeepLabv3+), even or non-positive kernels.
    """
    rows = [list(s) for s in strides]
    if not rows or any(len(r) != dims for r in rows) or any(v < 1 for r in rows for v in r):
        raise ConfigError(f"model.strides: {name} expects rows of {dims} positive ints, got {rows}")
    if any(v != 1 for v in rows[0]):
        raise ConfigError(f"model.strides: the first row must be all ones, got {rows[0]}")
    if len(kernels) != len(rows) or any(
        len(k) != dims or any(v < 1 or v % 2 == 0 for v in k) for k in kernels
    ):
        raise ConfigError(
            f"model.kernels: {name} expects {len(rows)} rows of {dims} odd positive sizes "
            f"(one per stride row), got {[list(k) for k in kernels]}"
        )
    if name == "deeplabv3plus":
        stages = _stages(options) + 1
        if len(rows) != stages or any(v not in (1, 2) for r in rows for v in r):
            raise ConfigError(
                f"model.strides: deeplabv3plus with output_stride {options.get('output_stride')} "
                f"expects {stages} rows of 1s and 2s, got {rows}",
                hint="use strides: auto",
            )


def check_skips(options: dict[str, Any], given: Mapping[str, Any], levels: int) -> None:
    """FCN: clamp the default ``skips`` to the levels there are; refuse an explicit excess."""
    most = max(0, levels - 1)
    if options["skips"] <= most:
        return
    if "skips" in given and given["skips"] is not None:
        raise ConfigError(
            f"model.options.skips: this plan has {levels} levels, so at most {most} skip "
            f"connections, got {options['skips']}",
            hint="use a larger patch or fewer skips",
        )
    options["skips"] = most


def plan_architecture(model: dict[str, Any], dims: int) -> None:
    """Resolve ``model.options`` and deep supervision of ``fcn`` / ``deeplabv3plus`` in place.

    ``model`` is the workflow's ``model`` section as a dict with ``base_filters``, ``kernels`` and
    ``strides`` already resolved by the U-Net planner.
    """
    name, base, levels = model["name"], int(model["base_filters"]), len(model["strides"])
    given = dict(model["options"])
    deepest = min(base * 2 ** (levels - 1), int(model["max_filters"]))
    options = resolve_options(name, given, base=base, deepest=deepest)
    check_topology(name, options, model["kernels"], model["strides"], dims)
    if name == "fcn":
        check_skips(options, given, levels)
    model.update(options=options, deep_supervision=False, deep_supervision_levels=0)


def describe_architecture(name: str, options: Mapping[str, Any]) -> str:
    """One line for the plan table: the options that shape the network."""
    if name == "fcn":
        return (
            f"{options['skips']} skip fusions (2 = FCN-8s), {options['convs_per_level']} "
            f"convs/level, head {options['head_channels']}, {options['norm']} norm"
        )
    return (
        f"ResNet-{options['backbone_depth']}, output stride {options['output_stride']}, "
        f"ASPP rates {list(options['aspp_dilations'])}"
        + (" + image pooling" if options["image_pooling"] else "")
        + f", {options['norm']} norm"
    )
