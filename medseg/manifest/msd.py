"""Import and export of Medical Segmentation Decathlon (MSD) and nnU-Net v2 dataset layouts.

* nnU-Net v2 raw layout: ``dataset.json`` with ``channel_names``, ``labels`` (name -> value) and
  ``file_ending``; ``imagesTr/<case>_<CCCC><ending>``, ``labelsTr/<case><ending>``, ``imagesTs``.
* MSD: ``dataset.json`` with ``modality``, ``labels`` (value -> name), ``training`` (image/label
  pairs) and ``test``. Multi-channel MSD images are 4D files, which medseg does not split: they
  raise a clear error (convert them to one file per channel, as nnU-Net v2 does).

Exports write nnU-Net v2 (NIfTI, any source format converted through ``read_volume``), with
``channel_names`` nnU-Net understands (``CT`` selects its CT normalisation) and
``splits_final.json`` with the manifest's patient-level folds where nnU-Net reads it
(:mod:`medseg.manifest.nnunet_splits`). Imports read those splits back.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medseg.errors import ConfigError
from medseg.io.atomic import ensure_output_dir, write_json_atomic
from medseg.io.nifti import write_nifti
from medseg.manifest.naming import sanitize, strip_extension
from medseg.manifest.nnunet_splits import find_splits, folds_from_splits, splits_of, write_splits
from medseg.manifest.schema import Case, Manifest
from medseg.manifest.splits import assign_splits
from medseg.types import PathLike

logger = logging.getLogger(__name__)
DEFAULT_FOLDS = 5
DATASET_NAME = re.compile(r"Dataset\d{3}_[A-Za-z0-9_.-]+")


def _load_dataset_json(folder: Path) -> dict[str, Any]:
    path = folder / "dataset.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read dataset.json: {err}", path=path) from err
    if not isinstance(data, dict) or "labels" not in data:
        raise ConfigError("dataset.json has no 'labels'", path=path)
    return data


def _nnunet_cases(
    folder: Path, data: dict[str, Any]
) -> tuple[list[Case], list[str], dict[str, str]]:
    ending = data.get("file_ending", ".nii.gz")
    channels = [
        sanitize(str(v))
        for _, v in sorted(data["channel_names"].items(), key=lambda kv: int(kv[0]))
    ]
    labels = {str(int(v)): str(k) for k, v in data["labels"].items() if not isinstance(v, list)}
    cases = []
    splits: tuple[tuple[Literal["train", "test"], str], ...] = (
        ("train", "imagesTr"),
        ("test", "imagesTs"),
    )
    for split, sub in splits:
        first = sorted((folder / sub).glob(f"*_0000{ending}")) if (folder / sub).is_dir() else []
        for path in first:
            case_id = path.name[: -len(f"_0000{ending}")]
            images = {ch: f"{sub}/{case_id}_{i:04d}{ending}" for i, ch in enumerate(channels)}
            label = folder / "labelsTr" / f"{case_id}{ending}"
            cases.append(
                Case(
                    case_id=sanitize(case_id),
                    patient_id=sanitize(case_id),
                    images=images,  # type: ignore[arg-type]
                    label=f"labelsTr/{case_id}{ending}" if label.exists() else None,
                    split=split,
                )
            )
    return cases, channels, labels


def _msd_cases(folder: Path, data: dict[str, Any]) -> tuple[list[Case], list[str], dict[str, str]]:
    modalities = data.get("modality", {"0": "image"})
    if len(modalities) > 1:
        raise ConfigError(
            f"MSD dataset with {len(modalities)} channels in 4D files is not supported",
            hint="convert it to the nnU-Net v2 layout (one file per channel) first",
        )
    labels = {str(k): str(v) for k, v in data["labels"].items()}
    cases = []
    for entry in data.get("training", []):
        image = str(entry["image"]).removeprefix("./")
        case_id = sanitize(strip_extension(Path(image).name))
        cases.append(
            Case(
                case_id=case_id,
                patient_id=case_id,
                images={"image": image},
                label=str(entry["label"]).removeprefix("./"),
            )
        )
    for entry in data.get("test", []):
        image = str(entry if isinstance(entry, str) else entry["image"]).removeprefix("./")
        case_id = sanitize(strip_extension(Path(image).name))
        cases.append(
            Case(case_id=case_id, patient_id=case_id, images={"image": image}, split="test")
        )
    return cases, ["image"], labels


@dataclass
class ImportResult:
    """An imported manifest and how its folds were chosen (one line for the CLI)."""

    manifest: Manifest
    folds_note: str
    splits_file: Path | None = None


def _auto_folds(train: list[Case], n_folds: int | None, seed: int) -> tuple[list[Case], int, str]:
    """Folds by patient: ``n_folds``, or by default 5 or fewer when the data has fewer patients."""
    patients = {c.patient_id for c in train if c.label}
    if not patients:
        return assign_splits(train, n_folds=1), 1, "no label maps: an inference-only manifest"
    if n_folds is None:
        n_folds = min(DEFAULT_FOLDS, len(patients))
        if n_folds < DEFAULT_FOLDS:
            note = f"{len(patients)} labelled patients: {n_folds} folds (default {DEFAULT_FOLDS})"
            return assign_splits(train, n_folds=n_folds, seed=seed), n_folds, note
    cases = assign_splits(train, n_folds=n_folds, seed=seed)
    return cases, n_folds, f"{n_folds} patient-level folds (seed {seed})"


def _file_folds(train: list[Case], path: Path) -> tuple[list[Case], int, str]:
    labelled = [c.case_id for c in train if c.label]
    fold_of = folds_from_splits(path, labelled)
    n_folds = 1 + max(fold_of.values(), default=0)
    cases = [c.model_copy(update={"fold": fold_of.get(c.case_id)}) for c in train]
    return cases, n_folds, f"{n_folds} folds from {path}"


def _with_modality(cases: list[Case], channels: list[str], modality: str | None) -> list[Case]:
    """Cases whose first channel is CT (by nnU-Net channel name or MSD modality) say so."""
    if (modality or channels[0]).casefold() != "ct":
        return cases
    return [c.model_copy(update={"modality": c.modality or "CT"}) for c in cases]


def import_dataset(
    dataset_dir: PathLike,
    output: PathLike,
    *,
    n_folds: int | None = None,
    seed: int = 0,
    preprocessed_root: PathLike | None = None,
) -> ImportResult:
    """Read an MSD or nnU-Net v2 dataset folder into a manifest saved next to ``output``.

    Folds come from nnU-Net's ``splits_final.json`` when present (in
    ``preprocessed_root/<dataset folder name>/``, else in the dataset folder; see
    :mod:`medseg.manifest.nnunet_splits`); otherwise they are assigned by patient: ``n_folds``,
    or by default 5, or fewer when the data has fewer labelled patients.

    Raises:
        ConfigError: unreadable ``dataset.json`` or splits, or more folds asked than patients.
    """
    folder = Path(dataset_dir).resolve()
    data = _load_dataset_json(folder)
    if "channel_names" in data:
        cases, channels, labels = _nnunet_cases(folder, data)
        modality = None
    else:
        cases, channels, labels = _msd_cases(folder, data)
        modality = str(data.get("modality", {}).get("0", "")) or None
    cases = _with_modality(cases, channels, modality)
    if "0" not in labels:
        labels = {"0": "background", **labels}
    train = [c for c in cases if c.split == "train"]
    test = [c.model_copy(update={"fold": None}) for c in cases if c.split == "test"]
    root = None if preprocessed_root is None else Path(preprocessed_root)
    splits = find_splits(folder, root) if any(c.label for c in train) else None
    if splits is not None:
        train, folds, note = _file_folds(train, splits)
    else:
        train, folds, note = _auto_folds(train, n_folds, seed)
    manifest = Manifest(
        name=sanitize(str(data.get("name", folder.name))),
        data_root=os.path.relpath(folder, Path(output).resolve().parent),
        labels=labels,
        lesion_labels=[],
        channels=channels,
        n_folds=folds,
        cases=train + test,
    )
    logger.info("imported %s: %d cases; %s", manifest.name, len(manifest.cases), note)
    return ImportResult(manifest, note, splits)


def nnunet_channel_names(manifest: Manifest) -> dict[str, str]:
    """``channel_names`` for nnU-Net's ``dataset.json``: ``CT`` where nnU-Net should use its CT
    normalisation (a channel named ct, or the only channel of a mostly-CT manifest), else the
    manifest's channel names (nnU-Net z-scores those)."""
    modalities = Counter((c.modality or "unknown").upper() for c in manifest.cases)
    mostly_ct = bool(modalities) and modalities.most_common(1)[0][0] == "CT"
    single_ct = len(manifest.channels) == 1 and mostly_ct
    return {
        str(i): "CT" if channel.casefold() == "ct" or single_ct else channel
        for i, channel in enumerate(manifest.channels)
    }


@dataclass
class ExportResult:
    """Where an export went, and what the user should know about it."""

    dataset_dir: Path
    splits_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _write_cases(manifest: Manifest, root: Path) -> None:
    for case in manifest.cases:
        sub = "imagesTr" if case.split == "train" and case.label else "imagesTs"
        for index, channel in enumerate(manifest.channels):
            write_nifti(
                manifest.read_image(case, channel),
                root / sub / f"{case.case_id}_{index:04d}.nii.gz",
            )
        if case.label and case.split == "train":
            write_nifti(manifest.read_label(case), root / "labelsTr" / f"{case.case_id}.nii.gz")


def export_nnunet(
    manifest: Manifest, dataset_dir: PathLike, *, preprocessed_root: PathLike | None = None
) -> ExportResult:
    """Write ``manifest`` as an nnU-Net v2 raw dataset (NIfTI, ``dataset.json``, splits).

    Args:
        manifest: the cases; labelled training cases go to ``imagesTr``/``labelsTr``, the others
            to ``imagesTs``.
        dataset_dir: the raw dataset folder, named ``DatasetXXX_NAME`` under ``$nnUNet_raw``.
        preprocessed_root: ``$nnUNet_preprocessed``; when given, ``splits_final.json`` is also
            written to ``<preprocessed_root>/<dataset folder name>/``, where nnU-Net's trainer
            reads it (see :mod:`medseg.manifest.nnunet_splits`).
    """
    root = ensure_output_dir(dataset_dir)
    result = ExportResult(root)
    if not DATASET_NAME.fullmatch(root.name):
        result.warnings.append(
            f"nnU-Net finds datasets by folder names like Dataset001_NAME; {root.name!r} is not one"
        )
    _write_cases(manifest, root)
    train = [c for c in manifest.cases if c.split == "train" and c.label]
    write_json_atomic(
        root / "dataset.json",
        {
            "name": manifest.name,
            "description": f"exported by {manifest.created_by}",
            "channel_names": nnunet_channel_names(manifest),
            "labels": {name: int(value) for value, name in manifest.labels.items()},
            "numTraining": len(train),
            "file_ending": ".nii.gz",
        },
    )
    splits = splits_of(manifest.cases)
    if splits:
        result.splits_files = write_splits(splits, root, _path(preprocessed_root))
    return result


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)
