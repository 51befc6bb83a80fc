"""Pairing of predictions and references by case id, and reading predicted instances."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.artifacts import RUN_REPORT, read_instances_file, read_run_report
from medseg.errors import ConfigError, DataError
from medseg.evaluation.evaluate import PredictedInstances, check_geometry
from medseg.io.atomic import PARTIAL_TAG
from medseg.io.read import read_volume
from medseg.io.volume import Volume


@dataclass(frozen=True)
class CasePlan:
    """Which cases pair up, how to read their references, and the label names."""

    pred: dict[str, Path]
    ref: dict[str, Callable[[], Volume]]
    labels: dict[int, str] | None
    lesion_labels: list[int] | None
    description: str
    label_source: str = ""
    notes: list[str] = field(default_factory=list)


def _nifti_stem(name: str) -> str | None:
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _nifti_files(folder: Path) -> dict[str, Path]:
    """``case_id -> file`` for the NIfTI files of a folder (hidden and partial files ignored)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = _nifti_stem(path.name)
        if stem is None or path.name.startswith(".") or PARTIAL_TAG in path.name:
            continue
        if path.is_file():
            files[stem] = path
    return files


def _prediction_files(pred_dir: Path) -> dict[str, Path]:
    files = _nifti_files(pred_dir)
    return {
        k: v
        for k, v in files.items()
        if not (k.endswith("_instances") and k.removesuffix("_instances") in files)
    }


def _run_report_labels(pred_dir: Path) -> dict[int, str] | None:
    """Foreground label names of the folder's ``run_report.json`` (None: no report or names).

    Raises:
        DataError: the report is not a run report (:func:`~medseg.artifacts.read_run_report`).
    """
    path = pred_dir / RUN_REPORT
    if not path.is_file():
        return None
    return read_run_report(path).label_names(foreground_only=True) or None


def plan_cases(pred_dir: Path, ref: Path) -> CasePlan:
    from medseg.manifest.schema import load_manifest

    pred = _prediction_files(pred_dir)
    if not pred:
        raise DataError(
            "no predicted label maps (<case_id>.nii.gz) in the prediction folder",
            path=pred_dir,
            hint="point at the output folder of `medseg predict`",
        )
    if ref.is_file() and ref.suffix.lower() == ".json":
        manifest = load_manifest(ref)
        cases = {c.case_id: c for c in manifest.cases if c.label is not None}
        loaders: dict[str, Callable[[], Volume]] = {
            cid: functools.partial(manifest.read_label, case) for cid, case in cases.items()
        }
        labels = {int(k): v for k, v in manifest.labels.items() if int(k) != 0}
        return CasePlan(pred, loaders, labels, list(manifest.lesion_labels), str(ref), "manifest")
    if ref.is_dir():
        refs: dict[str, Callable[[], Volume]] = {
            cid: functools.partial(read_volume, path) for cid, path in _nifti_files(ref).items()
        }
        found = _run_report_labels(pred_dir)
        source = RUN_REPORT if found else "label values"
        return CasePlan(pred, refs, found, None, str(ref), source)
    raise ConfigError(
        f"the reference {str(ref)!r} is neither a manifest (.json) nor a folder of label maps",
        hint="pass --ref data_manifests/NAME.json or a folder of <case_id>.nii.gz",
    )


def read_instances(
    pred_dir: Path, case_id: str, ref: Volume, *, atol_mm: float
) -> PredictedInstances | None:
    """The case's predicted instances, or None without ``_instances.nii.gz`` + ``.json``.

    Raises:
        DataError: unreadable files or instance list.
        GeometryError: the instance map is not on the reference grid.
    """
    map_path = pred_dir / f"{case_id}_instances.nii.gz"
    info_path = pred_dir / f"{case_id}.json"
    if not (map_path.is_file() and info_path.is_file()):
        return None
    try:
        items = read_instances_file(info_path).instances
    except DataError as err:
        raise DataError(err.message, path=info_path, case_id=case_id, hint=err.hint) from err
    labels = {i.instance_id: i.label for i in items}
    scores = {i.instance_id: i.score for i in items}
    volume = read_volume(map_path)
    check_geometry(volume, ref, case_id=case_id, atol_mm=atol_mm, what="instance map")
    return PredictedInstances(np.rint(np.asarray(volume.array)).astype(np.int64), labels, scores)


def resolve_lesion_labels(
    given: Sequence[int | str] | None, labels: dict[int, str] | None
) -> list[int] | None:
    """Label values of ``given`` (values or names); None keeps the default."""
    if given is None:
        return None
    by_name = {name: value for value, name in (labels or {}).items()}
    out = []
    for item in given:
        text = str(item).strip()
        if text.isdigit() and int(text) != 0:
            out.append(int(text))
        elif text in by_name:
            out.append(by_name[text])
        elif labels:
            known = ", ".join(f"{v} ({n})" for v, n in labels.items())
            raise ConfigError(f"unknown lesion label {text!r}; known labels: {known}")
        else:
            raise ConfigError(
                f"unknown lesion label {text!r}: label names are not known here",
                hint="give label values (e.g. 2), or evaluate against a manifest",
            )
    return out
