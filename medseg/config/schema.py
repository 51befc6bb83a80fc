"""Workflow YAML schema (pydantic, ``extra="forbid"``).

A workflow says what to train and how. Values written ``auto`` are decided by ``medseg plan`` from
the dataset fingerprint and frozen into ``resolved_workflow.yaml`` (a :class:`ResolvedWorkflow`,
which admits no ``auto`` and carries the derived :class:`PlanInfo`). See ``workflows/*.yaml``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

WORKFLOW_SCHEMA_VERSION: Literal[1] = 1
Auto: TypeAlias = Literal["auto"]
AUTO: Literal["auto"] = "auto"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(_Section):
    """What is learned: semantic label maps or lesion instances, in 2D slices or 3D patches."""

    kind: Literal["semantic", "instance"] = "semantic"
    dims: Literal["2d", "3d"] = "3d"
    slice_axis: int | Auto = Field(
        default=AUTO, description="2D: axis (after orientation) to slice along"
    )


class IntensityConfig(_Section):
    """Intensity normalisation.

    Schemes: ``ct`` (clip to the dataset's foreground 0.5-99.5 percentiles, z-score with the
    foreground mean/sd, as nnU-Net), ``ct_window`` (clip to ``window`` HU, scale to [-1, 1]),
    ``zscore`` (per image: clip to its ``percentiles``, z-score), ``oct`` (per image, like
    zscore, for log-compressed OCT), ``none``. ``auto`` picks from the modality.
    """

    scheme: Literal["ct", "ct_window", "zscore", "oct", "none"] | Auto = AUTO
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    clip: tuple[float, float] | Auto | None = Field(default=AUTO, description="ct: HU clip range")
    mean: float | Auto | None = AUTO
    std: float | Auto | None = AUTO


class PreprocessConfig(_Section):
    orientation: str = "RAS"
    target_spacing: tuple[float, float, float] | Auto = AUTO
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)


class ModelConfig(_Section):
    """Network choice (registry name) and its architecture; ``auto`` values come from the plan.

    ``kernels`` / ``strides`` (per level, per axis) shape DynUNet, FCN and DeepLabv3+ (whose
    downsampling stages they are); ``deep_supervision`` only applies to DynUNet. ``options`` go to
    the builder: SegResNet's constructor, Mask R-CNN's config, or the FCN / DeepLabv3+ options of
    :mod:`medseg.config.plan_archs` (checked and completed by the plan).
    """

    name: Literal["dynunet", "segresnet", "fcn", "deeplabv3plus", "maskrcnn"] = "dynunet"
    base_filters: int | Auto = AUTO
    max_filters: int | Auto = AUTO
    kernels: list[list[int]] | Auto = AUTO
    strides: list[list[int]] | Auto = AUTO
    deep_supervision: bool = True
    deep_supervision_levels: int | Auto = AUTO
    options: dict[str, Any] = Field(default_factory=dict, description="extra builder options")


class AugmentationConfig(_Section):
    preset: Literal["none", "light", "default", "heavy"] = "default"
    flip_axes: list[int] | Auto = AUTO


class TrainConfig(_Section):
    patch_size: list[int] | Auto = AUTO
    batch_size: int | Auto = AUTO
    epochs: int = Field(default=100, ge=1)
    iterations_per_epoch: int = Field(default=250, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float | Auto = AUTO
    weight_decay: float = 3e-5
    momentum: float = 0.99
    scheduler: Literal["poly", "cosine", "constant"] = "poly"
    loss: Literal["dice_ce", "dice", "ce"] = "dice_ce"
    grad_clip: float | None = 12.0
    foreground_ratio: float = Field(default=0.67, ge=0.0, le=1.0)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    amp: Literal["on", "off", "bf16", "fp16"] = Field(
        default="on", description="on: bf16 (or fp16) autocast on CUDA, off on CPU; bf16 forces it"
    )
    val_interval: int = Field(default=1, ge=1, description="validate every N epochs")
    early_stopping_patience: int | None = Field(default=None, ge=1, description="in validations")
    max_minutes: float | None = Field(default=None, gt=0, description="time budget; stops cleanly")
    memory_budget_gb: float | Auto = AUTO
    num_workers: int | Auto = AUTO
    seed: int = 0


class InferConfig(_Section):
    overlap: float = Field(default=0.5, ge=0.0, lt=1.0)
    blend: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int | Auto = AUTO
    tta: bool = False
    crop_foreground: bool = True
    skip_empty_windows: bool = True


class PostprocessConfig(_Section):
    min_volume_mm3: float = Field(default=0.0, ge=0.0)
    fill_holes: bool = False
    keep_largest: list[str] = Field(default_factory=list, description="label names")


class InstanceConfig(_Section):
    """Mask R-CNN integration (``task.kind: instance``); sizes in voxels of the preprocessed grid.

    Training turns every connected component of a lesion label in a patch into one target
    (components under ``min_target_voxels`` are ignored). Inference tiles the volume, keeps the
    detections scoring at least the model's ``score_threshold``, drops cross-tile duplicates with
    class-aware NMS (box IoU ``nms_iou``), merges same-class masks overlapping by
    ``merge_overlap`` of the smaller one (a lesion cut by a tile border), links 2D per-slice
    instances on neighbouring slices overlapping by ``link_overlap`` of the smaller one into 3D
    lesions (score = max), and finally drops lesions scoring under ``score_threshold``.
    """

    min_target_voxels: int = Field(default=3, ge=1)
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    mask_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    merge_overlap: float = Field(default=0.5, gt=0.0, le=1.0)
    link_overlap: float = Field(default=0.2, gt=0.0, le=1.0)


class EvaluateConfig(_Section):
    lesion_match: Literal["iou", "overlap"] = "overlap"
    lesion_iou: float = Field(default=0.1, ge=0.0, le=1.0)
    min_lesion_mm3: float = Field(default=0.0, ge=0.0)


class WorkflowConfig(_Section):
    """A workflow file (see the module docstring)."""

    schema_version: Literal[1] = WORKFLOW_SCHEMA_VERSION
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    manifest: str = Field(
        description="manifest JSON: relative to the workflow file; in --set, to the current folder"
    )
    task: TaskConfig = Field(default_factory=TaskConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    instances: InstanceConfig = Field(default_factory=InstanceConfig)

    @model_validator(mode="after")
    def _dims_match(self) -> WorkflowConfig:
        n = 2 if self.task.dims == "2d" else 3
        patch = self.train.patch_size
        if patch != AUTO and len(patch) != n:
            raise ValueError(
                f"train.patch_size: expected {n} values for dims={self.task.dims}, got {len(patch)}"
            )
        if self.model.name == "maskrcnn" and self.task.kind != "instance":
            raise ValueError("model.name maskrcnn needs task.kind: instance")
        if self.task.kind == "instance" and self.model.name != "maskrcnn":
            raise ValueError("task.kind instance needs model.name: maskrcnn")
        return self


class PlanInfo(_Section):
    """What the planner derived from the data (read by training and inference)."""

    fingerprint_sha256: str
    workflow_sha256: str = Field(
        description="hash of the workflow (after overrides) it was planned from"
    )
    manifest_sha256: str
    n_training_cases: int
    modality: str
    in_channels: int
    channels: list[str]
    labels: dict[str, str]
    lesion_labels: list[int]
    median_spacing: tuple[float, float, float]
    median_shape: tuple[int, int, int]
    network_input: list[int] = Field(description="patch size seen by the network")


def find_auto(obj: Any, path: str = "") -> list[str]:
    """Dotted paths of every ``auto`` value left in a config (model or plain data)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    if obj == AUTO:
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in find_auto(v, f"{path}.{k}" if path else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in find_auto(v, f"{path}.{i}")]
    return []


class ResolvedWorkflow(WorkflowConfig):
    """A workflow after planning: no ``auto`` anywhere, plus the :class:`PlanInfo`."""

    plan: PlanInfo

    @model_validator(mode="after")
    def _no_auto(self) -> ResolvedWorkflow:
        left = find_auto(self.model_dump(exclude={"plan"}))
        if left:
            raise ValueError(f"unresolved auto values: {', '.join(left)}")
        return self

    # typed accessors for values that are concrete after planning
    @property
    def patch_size(self) -> list[int]:
        return list(self.train.patch_size)  # type: ignore[arg-type]

    @property
    def batch_size(self) -> int:
        return int(self.train.batch_size)

    @property
    def target_spacing(self) -> tuple[float, float, float]:
        return tuple(self.preprocess.target_spacing)  # type: ignore[return-value]

    @property
    def slice_axis(self) -> int:
        return int(self.task.slice_axis)

    @property
    def spatial_dims(self) -> int:
        return 2 if self.task.dims == "2d" else 3

    @property
    def num_classes(self) -> int:
        """Output channels: background plus every declared label."""
        return len(self.plan.labels)
