"""``plan``: resolve every ``auto`` of a workflow from the dataset fingerprint (nnU-Net's rules).

* target spacing: the median spacing; for anisotropic data (the coarse axis more than 3x the
  others, in spacing and in voxels) the coarse axis takes the 10th percentile instead.
  In 2D the slice axis (the coarsest) is never resampled.
* topology: pool an axis while its spacing is within 2x of the finest and its feature map stays
  >= 8 voxels; convolution kernels are 1 along axes still much coarser than the finest (so an
  anisotropic CT gets in-plane-only pooling and kernels first); at most 5 (3D) / 6 (2D) pools.
* patch size: the median image at the target spacing, made divisible by the pooling, shrunk along
  its relatively largest axis until the memory estimate fits the budget; batch size: what else
  fits (3D at least 2, at most 8; 2D at most 64 and 5 % of the dataset's voxels per batch).
* ``fcn`` / ``deeplabv3plus`` use the same topology with their own number of stages, no deep
  supervision, and checked options (:mod:`medseg.config.plan_archs`).
* normalisation: ``ct`` for CT (dataset foreground percentiles, mean, sd), ``oct`` for OPT,
  ``zscore`` otherwise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.coding import LabelCoding, resolve_codings
from medseg.config.plan_archs import (
    describe_architecture,
    divisible_patch,
    finish_topology,
    is_segmentation_net,
    max_pools,
    plan_architecture,
)
from medseg.config.plan_maskrcnn import plan_maskrcnn, size_divisible
from medseg.config.schema import AUTO, PlanInfo, ResolvedWorkflow, WorkflowConfig
from medseg.errors import ConfigError
from medseg.manifest.fingerprint import Fingerprint
from medseg.manifest.schema import Manifest
from medseg.types import Spacing

ANISOTROPY = 3.0
MIN_FEATURE_MAP = 4
MAX_POOLS = {2: 6, 3: 5}
MAX_FILTERS = {2: 512, 3: 320}
BYTES_PER_FEATURE = 40  # fp32 activations + gradients + norm buffers, empirical
DEFAULT_BUDGET_GB = 8.0
OPHTHALMIC = {"OPT", "OP", "OCT"}


def target_spacing(fingerprint: Fingerprint) -> Spacing:
    """nnU-Net's full-resolution target spacing (median, anisotropic rule on the coarse axis)."""
    spacings = np.asarray(fingerprint.spacings, dtype=np.float64)
    sizes = np.asarray(fingerprint.shapes, dtype=np.float64)
    target = np.percentile(spacings, 50, axis=0)
    size = np.percentile(sizes, 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(3) if i != worst]
    aniso_spacing = target[worst] > ANISOTROPY * max(target[others])
    aniso_voxels = size[worst] * ANISOTROPY < min(size[others])
    if aniso_spacing and aniso_voxels:
        coarse = float(np.percentile(spacings[:, worst], 10))
        target[worst] = max(coarse, max(target[others]) + 1e-5)
    return tuple(float(v) for v in target)  # type: ignore[return-value]


def topology(
    spacing: npt.ArrayLike, patch: npt.ArrayLike, max_pools: int
) -> tuple[list[list[int]], list[list[int]]]:
    """DynUNet ``kernels`` and ``strides`` (first stride is 1) for a patch at ``spacing``."""
    current_spacing = np.asarray(spacing, dtype=np.float64)
    current_size = np.asarray(patch, dtype=np.int64)
    kernels: list[list[int]] = []
    strides: list[list[int]] = [[1] * len(current_spacing)]
    while True:
        finest = current_spacing.min()
        kernels.append([3 if s / finest < 2 else 1 for s in current_spacing])
        pool = [
            bool(s / finest < 2 and n >= 2 * MIN_FEATURE_MAP)
            for s, n in zip(current_spacing, current_size)
        ]
        if not any(pool) or len(strides) - 1 >= max_pools:
            break
        stride = [2 if p else 1 for p in pool]
        strides.append(stride)
        current_spacing = current_spacing * stride
        current_size = current_size // stride
    return kernels, strides


def divisor(strides: Sequence[Sequence[int]]) -> list[int]:
    """Per-axis factor a patch must be divisible by (product of the strides)."""
    return [int(np.prod([s[i] for s in strides])) for i in range(len(strides[0]))]


def memory_per_sample_gb(
    patch: Sequence[int], strides: Sequence[Sequence[int]], filters: Sequence[int]
) -> float:
    """Rough training memory of one sample: sum over levels of features x voxels."""
    voxels = float(np.prod(patch))
    total = 0.0
    for level, stride in enumerate(strides):
        voxels /= float(np.prod(stride))
        total += voxels * filters[level]
    return total * BYTES_PER_FEATURE / 1e9


def filters_for(n_levels: int, base: int, max_filters: int) -> list[int]:
    return [min(base * 2**i, max_filters) for i in range(n_levels)]


def _fit_patch(
    median: np.ndarray,
    spacing: npt.ArrayLike,
    dims: int,
    base: int,
    max_filters: int,
    budget_gb: float,
    min_batch: int,
    max_pools: int,
) -> tuple[list[int], list[list[int]], list[list[int]]]:
    patch = np.maximum(median.astype(np.int64), 2 * MIN_FEATURE_MAP)
    while True:
        kernels, strides = topology(spacing, patch, max_pools)
        div = np.asarray(divisor(strides))
        rounded = np.maximum((np.ceil(patch / div) * div).astype(np.int64), div)
        filters = filters_for(len(strides), base, max_filters)
        if memory_per_sample_gb(rounded, strides, filters) * min_batch <= budget_gb or np.all(
            rounded <= div
        ):
            return [int(v) for v in rounded], kernels, strides
        axis = int(np.argmax(rounded / median))
        patch = rounded.copy()
        patch[axis] = max(int(rounded[axis] - div[axis]), 2 * MIN_FEATURE_MAP)


def _batch_size(
    patch: list[int],
    strides: list[list[int]],
    filters: list[int],
    budget_gb: float,
    dims: int,
    dataset_voxels: float,
) -> int:
    per_sample = memory_per_sample_gb(patch, strides, filters)
    fits = int(budget_gb // max(per_sample, 1e-9))
    if dims == 3:
        return int(min(max(fits, 2), 8))
    cap = max(2, int(0.05 * dataset_voxels / float(np.prod(patch))))
    return int(min(max(fits, 2), 64, cap))


def _intensity(config: WorkflowConfig, fingerprint: Fingerprint) -> dict[str, object]:
    intensity = config.preprocess.intensity.model_dump()
    modality = fingerprint.modality.upper()
    if intensity["scheme"] == AUTO:
        intensity["scheme"] = (
            "ct" if modality == "CT" else "oct" if modality in OPHTHALMIC else "zscore"
        )
    stats = fingerprint.foreground_intensity[fingerprint.channels[0]]
    if intensity["scheme"] == "ct":
        for key, value in (
            ("clip", (stats.p00_5, stats.p99_5)),
            ("mean", stats.mean),
            ("std", max(stats.std, 1e-6)),
        ):
            if intensity[key] in (AUTO, None):
                intensity[key] = value
    else:
        for key in ("clip", "mean", "std"):
            if intensity[key] == AUTO:
                intensity[key] = None
    if intensity["scheme"] == "ct_window" and intensity["window"] is None:
        intensity["window"] = (stats.p00_5, stats.p99_5)
    return intensity


def _budget_gb(train: dict[str, Any]) -> float:
    value = train["memory_budget_gb"]
    return DEFAULT_BUDGET_GB if value == AUTO else float(value)


def _plan_unet(
    train: dict[str, Any],
    model: dict[str, Any],
    median_plane: np.ndarray,
    plane_spacing: Sequence[float],
    dims: int,
    fingerprint: Fingerprint,
) -> list[int]:
    """U-Net patch, topology, filters and batch size (in place); returns the patch size."""
    base = 32 if model["base_filters"] == AUTO else int(model["base_filters"])
    max_filters = MAX_FILTERS[dims] if model["max_filters"] == AUTO else int(model["max_filters"])
    budget = _budget_gb(train)
    pools = max_pools(model["name"], model["options"], MAX_POOLS[dims])
    if train["patch_size"] == AUTO:
        patch, kernels, strides = _fit_patch(
            median_plane, plane_spacing, dims, base, max_filters, budget, 2, pools
        )
    else:
        patch = [int(v) for v in train["patch_size"]]
        kernels, strides = topology(plane_spacing, patch, pools)
    kernels, strides = finish_topology(model["name"], model["options"], kernels, strides)
    if model["kernels"] != AUTO and model["strides"] != AUTO:
        kernels, strides = model["kernels"], model["strides"]
    patch = divisible_patch(patch, divisor(strides), explicit=train["patch_size"] != AUTO)
    filters = filters_for(len(strides), base, max_filters)
    dataset_voxels = float(sum(np.prod(s) for s in fingerprint.shapes))
    train["patch_size"] = patch
    if train["batch_size"] == AUTO:
        train["batch_size"] = _batch_size(patch, strides, filters, budget, dims, dataset_voxels)
    model.update(kernels=kernels, strides=strides, base_filters=base, max_filters=max_filters)
    if model["deep_supervision_levels"] == AUTO:
        model["deep_supervision_levels"] = max(1, min(3, len(strides) - 2))
    if is_segmentation_net(model["name"]):
        plan_architecture(model, dims)
    return patch


def flat_axis(shapes: Sequence[Sequence[int]]) -> int | None:
    """The axis that has one voxel in at least half of the images (one-slice data), else None.

    ``shapes`` are oriented case shapes (fingerprint order).
    """
    ones = (np.asarray(shapes) == 1).sum(axis=0)
    axis = int(np.argmax(ones))
    return axis if ones[axis] > 0 and 2 * ones[axis] >= len(shapes) else None


def plan_dims(task: dict[str, Any], train: dict[str, Any], fingerprint: Fingerprint) -> list[str]:
    """Decide ``task.dims`` and ``task.slice_axis`` (in place) from the data; returns notes.

    One-slice data (2D images, single B-scans) is planned 2D along its one-voxel axis, whatever
    the workflow says (a 3D patch of one slice learns nothing a 2D one does not); a 3-value
    ``train.patch_size`` then loses that axis. Otherwise ``auto`` is 3D, and the 2D slice axis
    is the coarsest.
    """
    flat = flat_axis(fingerprint.shapes)
    notes = []
    if flat is not None and task["dims"] != "2d":
        if task["dims"] == "3d":
            notes.append("task.dims 3d planned as 2d: the training images have one slice")
        task["dims"] = "2d"
        if train["patch_size"] != AUTO and len(train["patch_size"]) == 3:
            train["patch_size"] = [v for i, v in enumerate(train["patch_size"]) if i != flat]
    elif task["dims"] == AUTO:
        task["dims"] = "3d"
    if task["slice_axis"] == AUTO:
        spacing = np.asarray(fingerprint.median_spacing)
        coarsest = int(np.argmax(spacing))
        task["slice_axis"] = (flat if flat is not None else coarsest) if task["dims"] == "2d" else 2
    elif flat is not None and task["slice_axis"] != flat:
        notes.append(
            f"task.slice_axis {task['slice_axis']} is not the images' one-slice axis {flat}"
        )
    return notes


def _label_codes(config: WorkflowConfig, manifest: Manifest) -> dict[str, LabelCoding]:
    """Every foreground label's coding: the workflow's, else the manifest's, else the default.

    Raises:
        ConfigError: ``label_codes`` names a label the manifest does not have.
    """
    names = {int(k): v for k, v in manifest.labels.items()}
    try:
        codings = resolve_codings(
            names, manifest.lesion_labels, config.label_codes, manifest.label_codes
        )
    except ValueError as err:
        raise ConfigError(f"label_codes: {err}") from err
    return {str(v): c for v, c in codings.items()}


def plan_workflow(
    config: WorkflowConfig,
    fingerprint: Fingerprint,
    manifest: Manifest,
    *,
    workflow_sha256: str = "",
    manifest_sha256: str = "",
) -> ResolvedWorkflow:
    """Resolve every ``auto`` value; returns the frozen :class:`ResolvedWorkflow`."""
    data = config.model_dump()
    median_spacing = np.asarray(fingerprint.median_spacing)
    task, pre, model, train, infer = (
        data["task"],
        data["preprocess"],
        data["model"],
        data["train"],
        data["infer"],
    )
    notes = plan_dims(task, train, fingerprint)
    dims = 2 if task["dims"] == "2d" else 3
    spacing = np.asarray(
        pre["target_spacing"] if pre["target_spacing"] != AUTO else target_spacing(fingerprint)
    )
    pre["target_spacing"] = tuple(float(v) for v in spacing)
    pre["intensity"] = _intensity(config, fingerprint)
    axes = [i for i in range(3) if dims == 3 or i != task["slice_axis"]]
    median_shape = np.asarray(fingerprint.median_shape) * median_spacing / spacing
    budget = _budget_gb(train)
    if model["name"] == "maskrcnn":
        patch = plan_maskrcnn(train, model, median_shape[axes], dims=dims, manifest=manifest)
    else:
        plane_spacing = [float(v) for v in spacing[axes]]
        patch = _plan_unet(train, model, median_shape[axes], plane_spacing, dims, fingerprint)
    train["memory_budget_gb"] = budget
    if train["learning_rate"] == AUTO:
        train["learning_rate"] = 1e-2 if train["optimizer"] == "sgd" else 3e-4
    if train["num_workers"] == AUTO:
        train["num_workers"] = min(4, max(0, (os.cpu_count() or 1) - 1))
    if train["augmentation"]["flip_axes"] == AUTO:
        ophthalmic = fingerprint.modality.upper() in OPHTHALMIC
        train["augmentation"]["flip_axes"] = [0] if ophthalmic else list(range(dims))
    if infer["sw_batch_size"] == AUTO:
        infer["sw_batch_size"] = 4 if dims == 2 else 1
    data["plan"] = PlanInfo(
        fingerprint_sha256=fingerprint.sha256(),
        workflow_sha256=workflow_sha256,
        manifest_sha256=manifest_sha256,
        n_training_cases=fingerprint.n_cases,
        modality=fingerprint.modality,
        in_channels=len(manifest.channels),
        channels=list(manifest.channels),
        labels=dict(manifest.labels),
        lesion_labels=list(manifest.lesion_labels),
        median_spacing=fingerprint.median_spacing,
        median_shape=fingerprint.median_shape,
        network_input=patch,
        notes=notes,
        label_codes=_label_codes(config, manifest),
    ).model_dump()
    return ResolvedWorkflow.model_validate(data)


def describe_plan(resolved: ResolvedWorkflow) -> list[tuple[str, str]]:
    """(item, value) rows for the CLI's plan table."""
    fmt = lambda v: " x ".join(f"{x:.4g}" for x in v)  # noqa: E731
    intensity = resolved.preprocess.intensity
    return [
        (
            "task",
            f"{resolved.task.kind} {resolved.task.dims}"
            + (f" (slices along axis {resolved.slice_axis})" if resolved.spatial_dims == 2 else ""),
        ),
        ("training cases", str(resolved.plan.n_training_cases)),
        ("modality", resolved.plan.modality),
        ("median spacing (mm)", fmt(resolved.plan.median_spacing)),
        ("target spacing (mm)", fmt(resolved.target_spacing)),
        ("median shape", " x ".join(map(str, resolved.plan.median_shape))),
        ("patch size", " x ".join(map(str, resolved.patch_size))),
        ("batch size", str(resolved.batch_size)),
        (
            "normalisation",
            f"{intensity.scheme}"
            + (f" clip {fmt(intensity.clip)}" if isinstance(intensity.clip, tuple) else ""),
        ),
        *_network_rows(resolved),
        (
            "optimizer",
            f"{resolved.train.optimizer} lr {resolved.train.learning_rate}, "
            f"{resolved.train.scheduler}",
        ),
        ("labels", ", ".join(f"{k}={v}" for k, v in resolved.plan.labels.items())),
        *(("note", note) for note in resolved.plan.notes),
    ]


def _network_rows(resolved: ResolvedWorkflow) -> list[tuple[str, str]]:
    model = resolved.model
    if model.name == "maskrcnn":
        return [
            (
                "network",
                f"maskrcnn {resolved.task.dims}, lesion classes {resolved.plan.lesion_labels}",
            ),
            ("size divisible", str(size_divisible(model.options))),
        ]
    rows = [
        (
            "network",
            f"{model.name}, {len(model.strides)} levels, base {model.base_filters} filters",
        ),
        ("kernels", str(model.kernels)),
        ("strides", str(model.strides)),
    ]
    if is_segmentation_net(model.name):
        rows.insert(1, ("architecture", describe_architecture(model.name, model.options)))
    return [*rows, ("deep supervision", _deep_supervision(resolved))]


def _deep_supervision(resolved: ResolvedWorkflow) -> str:
    model = resolved.model
    if model.name == "dynunet" and model.deep_supervision:
        return f"on, {model.deep_supervision_levels} extra decoder outputs"
    if model.name == "dynunet":
        return "off"
    return f"off ({model.name} has no deep-supervision heads)"


def plan_divisible(resolved: ResolvedWorkflow) -> bool:
    """Whether the patch is divisible by the network's pooling (sanity check)."""
    if resolved.model.name == "maskrcnn":
        step = size_divisible(resolved.model.options)
        return all(p % step == 0 for p in resolved.patch_size)
    div = divisor(resolved.model.strides)
    return all(p % d == 0 for p, d in zip(resolved.patch_size, div)) and math.prod(div) > 0
