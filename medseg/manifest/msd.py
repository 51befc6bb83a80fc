"""Import and export of Medical Segmentation Decathlon (MSD) and nnU-Net v2 dataset layouts.

* nnU-Net v2 raw layout: ``dataset.json`` with ``channel_names``, ``labels`` (name -> value) and
  ``file_ending``; ``imagesTr/<case>_<CCCC><ending>``, ``labelsTr/<case><ending>``, ``imagesTs``.
* MSD: ``dataset.json`` with ``modality``, ``labels`` (value -> name), ``training`` (image/label
  pairs) and ``test``. Multi-channel MSD images are 4D files, which medseg does not split: they
  raise a clear error (convert them to one file per channel, as nnU-Net v2 does).

Exports write nnU-Net v2 (NIfTI, any source format converted through ``read_volume``), plus
``splits_final.json`` with the manifest's patient-level folds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from medseg.errors import ConfigError
from medseg.io.atomic import ensure_output_dir, write_json_atomic
from medseg.io.nifti import write_nifti
from medseg.manifest.naming import sanitize, strip_extension
from medseg.manifest.schema import Case, Manifest
from medseg.manifest.splits import assign_splits
from medseg.types import PathLike


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


def import_dataset(
    dataset_dir: PathLike, output: PathLike, *, n_folds: int = 5, seed: int = 0
) -> Manifest:
    """Read an MSD or nnU-Net v2 dataset folder into a manifest saved next to ``output``."""
    folder = Path(dataset_dir).resolve()
    data = _load_dataset_json(folder)
    if "channel_names" in data:
        cases, channels, labels = _nnunet_cases(folder, data)
    else:
        cases, channels, labels = _msd_cases(folder, data)
    if "0" not in labels:
        labels = {"0": "background", **labels}
    train = [c for c in cases if c.split == "train"]
    test = [c.model_copy(update={"fold": None}) for c in cases if c.split == "test"]
    train = assign_splits(train, n_folds=n_folds, seed=seed) if train else []
    return Manifest(
        name=sanitize(str(data.get("name", folder.name))),
        data_root=os.path.relpath(folder, Path(output).resolve().parent),
        labels=labels,
        lesion_labels=[],
        channels=channels,
        n_folds=n_folds,
        cases=train + test,
    )


def export_nnunet(manifest: Manifest, dataset_dir: PathLike) -> Path:
    """Write ``manifest`` as an nnU-Net v2 raw dataset (NIfTI, dataset.json, splits_final.json)."""
    root = ensure_output_dir(dataset_dir)
    for case in manifest.cases:
        sub = "imagesTr" if case.split == "train" and case.label else "imagesTs"
        for index, channel in enumerate(manifest.channels):
            write_nifti(
                manifest.read_image(case, channel),
                root / sub / f"{case.case_id}_{index:04d}.nii.gz",
            )
        if case.label and case.split == "train":
            write_nifti(manifest.read_label(case), root / "labelsTr" / f"{case.case_id}.nii.gz")
    train = [c for c in manifest.cases if c.split == "train" and c.label]
    write_json_atomic(
        root / "dataset.json",
        {
            "name": manifest.name,
            "description": f"exported by {manifest.created_by}",
            "channel_names": {str(i): ch for i, ch in enumerate(manifest.channels)},
            "labels": {name: int(value) for value, name in manifest.labels.items()},
            "numTraining": len(train),
            "file_ending": ".nii.gz",
        },
    )
    folds = sorted({c.fold for c in train if c.fold is not None})
    splits = [
        {
            "train": [c.case_id for c in train if c.fold != k],
            "val": [c.case_id for c in train if c.fold == k],
        }
        for k in folds
    ]
    write_json_atomic(root / "splits_final.json", splits)
    return root
