"""Workflow YAML schema (pydantic, ``extra="forbid"``).

A workflow says what to train and how. Values written ``auto`` are decided by ``medseg plan`` from
the dataset fingerprint and frozen into ``resolved_workflow.yaml``: a :class:`ResolvedWorkflow`,
the sibling of :class:`WorkflowConfig` whose sections (``ResolvedTrain``, ...) type every planned
value concretely, so it admits no ``auto``; it carries the derived :class:`PlanInfo`.
See ``workflows/*.yaml``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medseg.coding import LabelCoding, resolve_codings
from medseg.types import Spacing

WORKFLOW_SCHEMA_VERSION: Literal[1] = 1
Auto: TypeAlias = Literal["auto"]
AUTO: Literal["auto"] = "auto"
TaskKind: TypeAlias = Literal["semantic", "instance"]
SelectionMetric: TypeAlias = Literal["mean_dice", "lesion_f1"]
SELECTION_METRIC: dict[str, SelectionMetric] = {"semantic": "mean_dice", "instance": "lesion_f1"}
"""Model-selection metric by ``task.kind``: mean foreground Dice (U-Net), lesion F1 (Mask R-CNN)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(_Section):
    """What is learned: semantic label maps or lesion instances, in 2D slices or 3D patches.

    ``dims: auto`` (the default) is 2D when the images have one slice (2D images, single B-scans)
    and 3D otherwise; a ``3d`` workflow planned on one-slice images is planned as 2D too.
    """

    kind: TaskKind = "semantic"
    dims: Literal["2d", "3d"] | Auto = AUTO
    slice_axis: int | Auto = Field(
        default=AUTO, description="2D: axis (after orientation) to slice along"
    )


class ResolvedTask(TaskConfig):
    dims: Literal["2d", "3d"]
    slice_axis: int = Field(ge=0, le=2)


IntensityScheme: TypeAlias = Literal["ct", "ct_window", "zscore", "oct", "none"]


class IntensityConfig(_Section):
    """Intensity normalisation.

    Schemes: ``ct`` (clip to the dataset's foreground 0.5-99.5 percentiles, z-score with the
    foreground mean/sd, as nnU-Net), ``ct_window`` (clip to ``window`` HU, scale to [-1, 1]),
    ``zscore`` (per image: clip to its ``percentiles``, z-score), ``oct`` (per image, like
    zscore, for log-compressed OCT), ``none``. ``auto`` picks from the modality.
    """

    scheme: IntensityScheme | Auto = AUTO
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    clip: tuple[float, float] | Auto | None = Field(default=AUTO, description="ct: HU clip range")
    mean: float | Auto | None = AUTO
    std: float | Auto | None = AUTO


class ResolvedIntensity(IntensityConfig):
    scheme: IntensityScheme
    clip: tuple[float, float] | None
    mean: float | None
    std: float | None


class PreprocessConfig(_Section):
    orientation: str = "RAS"
    target_spacing: Spacing | Auto = AUTO
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)


class ResolvedPreprocess(PreprocessConfig):
    target_spacing: Spacing
    intensity: ResolvedIntensity


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


class ResolvedModel(ModelConfig):
    base_filters: int
    max_filters: int
    kernels: list[list[int]]
    strides: list[list[int]]
    deep_supervision_levels: int


class AugmentationConfig(_Section):
    preset: Literal["none", "light", "default", "heavy"] = "default"
    flip_axes: list[int] | Auto = AUTO


class ResolvedAugmentation(AugmentationConfig):
    flip_axes: list[int]


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


class ResolvedTrain(TrainConfig):
    patch_size: list[int]
    batch_size: int = Field(ge=1)
    learning_rate: float
    augmentation: ResolvedAugmentation
    memory_budget_gb: float
    num_workers: int = Field(ge=0)


class InferConfig(_Section):
    overlap: float = Field(default=0.5, ge=0.0, lt=1.0)
    blend: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int | Auto = AUTO
    tta: bool = False
    crop_foreground: bool = True
    skip_empty_windows: bool = True


class ResolvedInfer(InferConfig):
    sw_batch_size: int = Field(ge=1)


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


class _Workflow(_Section):
    """The sections of a workflow (as written, ``auto`` allowed)."""

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
    label_codes: dict[str, LabelCoding] = Field(
        default_factory=dict,
        description="label name or value -> coded concept (DICOM SEG / SR); wins over labels.json",
    )

    @model_validator(mode="after")
    def _dims_match(self) -> _Workflow:
        n = 2 if self.task.dims == "2d" else 3
        patch = self.train.patch_size
        if self.task.dims == AUTO:
            if patch != AUTO and len(patch) not in (2, 3):
                raise ValueError(f"train.patch_size: expected 2 or 3 values, got {len(patch)}")
        elif patch != AUTO and len(patch) != n:
            raise ValueError(
                f"train.patch_size: expected {n} values for dims={self.task.dims}, got {len(patch)}"
            )
        if self.model.name == "maskrcnn" and self.task.kind != "instance":
            raise ValueError("model.name maskrcnn needs task.kind: instance")
        if self.task.kind == "instance" and self.model.name != "maskrcnn":
            raise ValueError("task.kind instance needs model.name: maskrcnn")
        return self


class WorkflowConfig(_Workflow):
    """A workflow file (see the module docstring)."""


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
    median_spacing: Spacing
    median_shape: tuple[int, int, int]
    network_input: list[int] = Field(description="patch size seen by the network")
    notes: list[str] = Field(default_factory=list, description="choices the data forced")
    label_codes: dict[str, LabelCoding] = Field(
        default_factory=dict, description="every foreground label's coding, by value"
    )


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


class ResolvedWorkflow(_Workflow):
    """A workflow after planning (``resolved_workflow.yaml``, embedded in checkpoints).

    A sibling of :class:`WorkflowConfig`: the same sections in the same order, but the values
    ``plan`` decided have concrete types (``ResolvedTrain.patch_size: list[int]``...), so no
    ``auto`` can be stored and callers need no casts; plus the :class:`PlanInfo`.
    """

    task: ResolvedTask
    preprocess: ResolvedPreprocess
    model: ResolvedModel
    train: ResolvedTrain
    infer: ResolvedInfer
    plan: PlanInfo

    @model_validator(mode="before")
    @classmethod
    def _no_auto(cls, data: Any) -> Any:
        """One clear line for values left ``auto`` (before the type errors they would cause)."""
        if isinstance(data, dict):  # an omitted section would hold its defaults: auto values
            sections = {"task": TaskConfig, "preprocess": PreprocessConfig, "model": ModelConfig,
                        "train": TrainConfig, "infer": InferConfig}  # fmt: skip
            given = {k: v for k, v in data.items() if k != "plan"}
            filled = {k: given.get(k, model().model_dump()) for k, model in sections.items()}
            left = find_auto({**given, **filled})
            if left:
                raise ValueError(f"unresolved auto values: {', '.join(left)}")
        return data

    @property
    def patch_size(self) -> list[int]:
        return list(self.train.patch_size)

    @property
    def batch_size(self) -> int:
        return self.train.batch_size

    @property
    def target_spacing(self) -> Spacing:
        return self.preprocess.target_spacing

    @property
    def slice_axis(self) -> int:
        return self.task.slice_axis

    @property
    def spatial_dims(self) -> int:
        return 2 if self.task.dims == "2d" else 3

    @property
    def volume_patch(self) -> tuple[int, int, int]:
        """The training patch as a window over the three volume axes (2D models: 1 along
        ``slice_axis``), as sliding windows and 2D training samples use it."""
        patch = list(self.train.patch_size)
        if self.spatial_dims == 2:
            patch.insert(self.task.slice_axis, 1)
        return (patch[0], patch[1], patch[2])

    @property
    def selection_metric(self) -> SelectionMetric:
        """The validation score that picks ``checkpoint_best.pt`` (see :data:`SELECTION_METRIC`)."""
        return SELECTION_METRIC[self.task.kind]

    @property
    def num_classes(self) -> int:
        """Output channels: background plus every declared label."""
        return len(self.plan.labels)

    @property
    def label_codings(self) -> dict[int, LabelCoding]:
        """Coding of every foreground label: as planned (runs planned before codes existed get
        :func:`~medseg.coding.default_coding`)."""
        names = {int(k): v for k, v in self.plan.labels.items()}
        return resolve_codings(names, self.plan.lesion_labels, self.plan.label_codes)
