"""``MODEL_BUILDERS``: registry name -> builder(resolved workflow) -> ``nn.Module``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import ConfigError
from medseg.models.unet import build_dynunet, build_segresnet

Builder = Callable[[ResolvedWorkflow], nn.Module]


def build_fcn(resolved: ResolvedWorkflow) -> nn.Module:
    """FCN (``medseg.models.fcn``, imported on first use like the MONAI networks)."""
    from medseg.models.fcn import build_fcn as build

    return build(resolved)


def build_deeplabv3plus(resolved: ResolvedWorkflow) -> nn.Module:
    """DeepLabv3+ (``medseg.models.deeplab``, imported on first use)."""
    from medseg.models.deeplab import build_deeplabv3plus as build

    return build(resolved)


MODEL_BUILDERS: dict[str, Builder] = {
    "dynunet": build_dynunet,
    "segresnet": build_segresnet,
    "fcn": build_fcn,
    "deeplabv3plus": build_deeplabv3plus,
}


def register_model(name: str, builder: Builder) -> None:
    """Add a builder to the registry (e.g. from a plugin)."""
    MODEL_BUILDERS[name] = builder


def build_model(resolved: ResolvedWorkflow) -> nn.Module:
    """Build the workflow's network; unknown names list the valid ones."""
    name = resolved.model.name
    if name == "maskrcnn" and name not in MODEL_BUILDERS:
        from medseg.models.maskrcnn.builder import build_from_workflow

        register_model("maskrcnn", build_from_workflow)
    builder = MODEL_BUILDERS.get(name)
    if builder is None:
        close = difflib.get_close_matches(name, MODEL_BUILDERS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODEL_BUILDERS))}", hint=hint
        )
    return builder(resolved)


def has_deep_supervision(resolved: ResolvedWorkflow) -> bool:
    """Whether the model returns stacked deep-supervision outputs in training mode."""
    return resolved.model.name == "dynunet" and resolved.model.deep_supervision
