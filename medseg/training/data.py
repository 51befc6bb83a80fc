"""Training data: fold split, cached preprocessing, and a patch dataset of fixed length per epoch.

Patches are deterministic functions of ``(seed, epoch, rank, index)``, whatever the number of
workers, so a resumed run sees exactly the patches the uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medseg.config.schema import ResolvedWorkflow
from medseg.errors import DataError
from medseg.manifest.schema import Case, Manifest
from medseg.transforms.pipelines import (
    IMAGE,
    LABEL,
    channel_keys,
    patch_transforms,
    preprocess_transforms,
)

logger = logging.getLogger(__name__)


@dataclass
class FoldSplit:
    train: list[Case]
    val: list[Case]


def split_fold(manifest: Manifest, fold: int) -> FoldSplit:
    """Labelled training-split cases: fold ``fold`` validates, the others train.

    With a single fold (``n_folds: 1``) every case trains and there is no validation.
    """
    labelled = [c for c in manifest.cases if c.split == "train" and c.label]
    if not labelled:
        raise DataError(
            f"manifest {manifest.name} has no labelled training cases (inference only)",
            hint="predict with it, or rebuild it with --labels to train",
        )
    if manifest.n_folds > 1 and fold >= manifest.n_folds:
        raise DataError(f"fold {fold} does not exist: the manifest has {manifest.n_folds} folds")
    if manifest.n_folds == 1:
        return FoldSplit(train=labelled, val=[])
    split = FoldSplit(
        train=[c for c in labelled if c.fold != fold], val=[c for c in labelled if c.fold == fold]
    )
    if not split.train:
        raise DataError(f"no training cases outside fold {fold}")
    return split


def case_dict(
    manifest: Manifest, case: Case, resolved: ResolvedWorkflow, *, with_label: bool
) -> dict[str, Any]:
    """Input dictionary of one case for the MONAI pipelines (references, not pixels)."""
    keys = channel_keys(resolved)
    data: dict[str, Any] = {key: case.images[ch] for key, ch in zip(keys, resolved.plan.channels)}
    if with_label:
        data[LABEL] = case.label
    data["case_id"] = case.case_id
    return data


def preprocess_cases(
    manifest: Manifest,
    cases: Sequence[Case],
    resolved: ResolvedWorkflow,
    *,
    for_training: bool,
    on_case: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Load and preprocess cases once (orientation, spacing, normalisation), keeping them in RAM."""
    transform = preprocess_transforms(
        resolved,
        root=manifest.root,
        with_label=True,
        for_training=for_training,
        label_mapping=manifest.label_map,
    )
    items = []
    for case in cases:
        try:
            items.append(transform(case_dict(manifest, case, resolved, with_label=True)))
        except Exception as err:  # MONAI wraps reader errors in RuntimeError
            cause = err.__cause__ if err.__cause__ is not None else err
            raise DataError(f"cannot preprocess the case: {cause}", case_id=case.case_id) from err
        if on_case is not None:
            on_case(case.case_id)
    return items


class PatchDataset(Dataset):
    """``length`` random patches per epoch from cached, preprocessed cases.

    Args:
        items: outputs of :func:`preprocess_cases` (``for_training=True``).
        resolved: the workflow (patch sampling and augmentation).
        length: samples per epoch (iterations x batch size, divided among DDP ranks).
        seed: base seed; each sample is seeded by ``(seed, epoch, rank, index)``.
        rank: DDP rank (different ranks draw different patches).
    """

    def __init__(
        self,
        items: Sequence[dict[str, Any]],
        resolved: ResolvedWorkflow,
        *,
        length: int,
        seed: int,
        rank: int = 0,
    ) -> None:
        self.items = list(items)
        self.transform = patch_transforms(resolved)
        self.length = length
        self.seed = seed
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the patches of ``epoch`` (call before iterating a new epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, index])
        item = self.items[int(rng.integers(len(self.items)))]
        self.transform.set_random_state(seed=int(rng.integers(2**31 - 1)))
        out = self.transform(item)
        if isinstance(out, list):
            out = out[0]
        return {
            IMAGE: torch.as_tensor(out[IMAGE]).float(),
            LABEL: torch.as_tensor(out[LABEL]).long(),
        }
