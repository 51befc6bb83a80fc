"""nnU-Net v2 ``splits_final.json`` <-> a manifest's patient-level folds.

nnU-Net v2 trains fold ``k`` on ``splits[k]["train"]`` and validates on ``splits[k]["val"]``; it
reads the file from the *preprocessed* folder, ``$nnUNet_preprocessed/DatasetXXX_NAME/
splits_final.json``. nnU-Net 2.8 (checked in its experiment planner) also copies a
``splits_final.json`` found in the *raw* dataset folder there when planning, and refuses a
preprocessed copy that disagrees. So :func:`write_splits` writes it in the raw folder and, given
the preprocessed root, directly where the trainer reads it (needed when planning is already done
or with older nnU-Net versions).

medseg folds are a partition of the labelled training cases (fold ``k`` validates, all others
train), so :func:`folds_from_splits` accepts exactly the splits that are one: each case validates
in at most one fold and each fold trains on all the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.errors import ConfigError
from medseg.io.atomic import write_json_atomic
from medseg.manifest.naming import sanitize
from medseg.manifest.schema import Case

SPLITS_FILE = "splits_final.json"


def splits_of(cases: Sequence[Case]) -> list[dict[str, list[str]]]:
    """nnU-Net splits of the labelled training cases' folds (fold order, case ids sorted)."""
    train = sorted((c for c in cases if c.split == "train" and c.label), key=lambda c: c.case_id)
    folds = sorted({c.fold for c in train if c.fold is not None})
    return [
        {
            "train": [c.case_id for c in train if c.fold != k],
            "val": [c.case_id for c in train if c.fold == k],
        }
        for k in folds
    ]


def write_splits(
    splits: list[dict[str, list[str]]], raw_dir: Path, preprocessed_root: Path | None = None
) -> list[Path]:
    """Write ``splits_final.json`` in the raw dataset folder and, if given, the preprocessed one.

    Returns:
        The files written (raw first).
    """
    targets = [raw_dir / SPLITS_FILE]
    if preprocessed_root is not None:
        targets.append(Path(preprocessed_root) / raw_dir.name / SPLITS_FILE)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, splits)
    return targets


def find_splits(dataset_dir: Path, preprocessed_root: Path | None = None) -> Path | None:
    """The splits file of a dataset: in the preprocessed folder first, then the raw folder."""
    candidates = [dataset_dir / SPLITS_FILE]
    if preprocessed_root is not None:
        candidates.insert(0, Path(preprocessed_root) / dataset_dir.name / SPLITS_FILE)
    return next((p for p in candidates if p.is_file()), None)


def _load(path: Path) -> list[dict[str, list[str]]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read the splits file: {err}", path=path) from err
    ok = isinstance(data, list) and all(
        isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list)
        for s in data
    )
    if not ok or not data:
        raise ConfigError(
            'expected a non-empty list of {"train": [case ids], "val": [case ids]}', path=path
        )
    return [{k: [sanitize(str(i)) for i in s[k]] for k in ("train", "val")} for s in data]


def folds_from_splits(path: Path, case_ids: Sequence[str]) -> dict[str, int]:
    """``case_id -> fold`` from an nnU-Net splits file over the labelled training ``case_ids``.

    Cases validated in no fold are absent (they train in every fold).

    Raises:
        ConfigError: unreadable file, unknown case ids, a case validated in two folds, or a fold
            whose training cases are not all the others (medseg folds are a partition).
    """
    splits = _load(path)
    known = set(case_ids)
    unknown = sorted({i for s in splits for k in ("train", "val") for i in s[k]} - known)
    if unknown:
        raise ConfigError(
            f"{len(unknown)} case ids in the splits are not labelled training cases of the "
            f"dataset: {', '.join(unknown[:5])}",
            path=path,
        )
    fold_of: dict[str, int] = {}
    for k, split in enumerate(splits):
        for case_id in split["val"]:
            if case_id in fold_of:
                raise ConfigError(
                    f"case {case_id} validates in folds {fold_of[case_id]} and {k}; medseg folds "
                    "are a partition (each case validates in at most one fold)",
                    path=path,
                )
            fold_of[case_id] = k
        if set(split["train"]) != known - set(split["val"]):
            raise ConfigError(
                f"fold {k} does not train on every case outside its validation cases; medseg "
                "folds are a partition of the training cases",
                path=path,
                hint="regenerate the splits, or import without them (delete or rename the file)",
            )
    return fold_of
