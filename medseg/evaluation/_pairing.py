"""Pairing of predictions and references by case id, and reading predicted instances."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.artifacts import RUN_REPORT, read_instances_file, read_run_report
from medseg.errors import ConfigError, DataError, GeometryError
from medseg.evaluation.evaluate import PredictedInstances
from medseg.io.grid import onto_grid
from medseg.io.label_files import LABEL_MAP_SUFFIXES, label_map_files, read_label_map
from medseg.io.read import read_volume
from medseg.io.volume import Volume

CHANNEL_SUFFIX = "_0000"
"""nnU-Net's first-channel image suffix; a prediction named after its image keeps it."""


@dataclass(frozen=True)
class CasePlan:
    """Which cases pair up, how to read both sides, and the label names."""

    pred: dict[str, Callable[[], Volume]]
    ref: dict[str, Callable[[], Volume]]
    labels: dict[int, str] | None
    lesion_labels: list[int] | None
    description: str
    label_source: str = ""
    notes: list[str] = field(default_factory=list)


def _prediction_files(pred_dir: Path) -> dict[str, Path]:
    files = label_map_files(pred_dir)
    return {
        k: v
        for k, v in files.items()
        if not (k.endswith("_instances") and k.removesuffix("_instances") in files)
    }


def _json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable JSON: {err}", path=path) from err
    return data if isinstance(data, dict) else None


def _run_report_labels(pred_dir: Path) -> dict[int, str] | None:
    """Foreground label names of the folder's ``run_report.json`` (None: no report or names).

    Raises:
        DataError: the report is not a run report (:func:`~medseg.artifacts.read_run_report`).
    """
    path = pred_dir / RUN_REPORT
    if not path.is_file():
        return None
    return read_run_report(path).label_names(foreground_only=True) or None


def _dataset_json_labels(folder: Path) -> dict[int, str] | None:
    """Foreground labels of an nnU-Net ``dataset.json`` (``{"name": value}``; regions skipped)."""
    path = folder / "dataset.json"
    labels = (_json_object(path) or {}).get("labels")
    if not isinstance(labels, dict):
        return None
    try:
        return {int(v): str(k) for k, v in labels.items() if not isinstance(v, list) and int(v)}
    except (ValueError, TypeError) as err:
        raise DataError(f"unreadable labels in dataset.json: {err}", path=path) from err


def _reader(path: Path, labels: dict[int, str] | None) -> Callable[[], Volume]:
    return functools.partial(read_label_map, path, label_names=labels)


def _pair_channel_suffix(pred: dict[str, Path], ref_ids: set[str]) -> dict[str, Path]:
    """Predictions named after nnU-Net images (``case_0000``) take the reference id ``case``."""
    out = dict(pred)
    for case_id in sorted(pred):
        base = case_id.removesuffix(CHANNEL_SUFFIX)
        if base != case_id and case_id not in ref_ids and base in ref_ids and base not in out:
            out[base] = out.pop(case_id)
    return out


def _manifest_plan(pred: dict[str, Path], ref: Path) -> CasePlan:
    from medseg.manifest.schema import load_manifest

    manifest = load_manifest(ref)
    cases = {c.case_id: c for c in manifest.cases if c.label is not None}
    if not cases:
        raise ConfigError(
            f"manifest {ref.name} has no label maps (an inference-only manifest): "
            "there is nothing to compare the predictions with",
            hint="pass --ref a folder of reference label maps, or a manifest built with --labels",
        )
    labels = {int(k): v for k, v in manifest.labels.items() if int(k) != 0}
    # through the manifest: its label_mapping, and 2D label images on their image's grid
    loaders: dict[str, Callable[[], Volume]] = {
        cid: functools.partial(manifest.read_label, c) for cid, c in cases.items()
    }
    pred = _pair_channel_suffix(pred, set(loaders))
    readers = {cid: _reader(path, labels) for cid, path in pred.items()}
    return CasePlan(readers, loaders, labels, list(manifest.lesion_labels), str(ref), "manifest")


def _folder_plan(pred_dir: Path, pred: dict[str, Path], ref: Path) -> CasePlan:
    """A folder of reference label maps: names and lesion labels from its ``labels.json`` when
    there is one, else names from the run report or a ``dataset.json``, else the label values
    (every foreground value then is a lesion class)."""
    from medseg.manifest.build import LABELS_JSON, read_labels_json

    nnunet = (ref / "dataset.json").is_file() and (ref / "labelsTr").is_dir()
    folder = ref / "labelsTr" if nnunet else ref
    spec = read_labels_json(folder)
    if spec is not None:
        names = {int(k): v for k, v in spec[0].items() if int(k) != 0} or None
        refs = {cid: _reader(path, names) for cid, path in label_map_files(folder).items()}
        pred = _pair_channel_suffix(pred, set(refs))
        readers = {cid: _reader(path, names) for cid, path in pred.items()}
        return CasePlan(readers, refs, names, spec[1] or None, str(folder), LABELS_JSON)
    sources = [
        ("run_report.json", _run_report_labels(pred_dir)),
        ("dataset.json", _dataset_json_labels(ref) if nnunet else None),
        ("prediction dataset.json", _dataset_json_labels(pred_dir)),
    ]
    source, labels = next(((s, v) for s, v in sources if v), ("label values", None))
    refs = {cid: _reader(path, labels) for cid, path in label_map_files(folder).items()}
    pred = _pair_channel_suffix(pred, set(refs))
    readers = {cid: _reader(path, labels) for cid, path in pred.items()}
    return CasePlan(readers, refs, labels, None, str(folder), source)


def plan_cases(pred_dir: Path, ref: Path) -> CasePlan:
    """Pair the predictions of ``pred_dir`` with the references of ``ref`` by case id.

    ``ref`` is a manifest (its labelled cases), a folder of label maps, or an nnU-Net dataset
    folder (``dataset.json`` + ``labelsTr/``). Label maps of every format of
    :mod:`medseg.io.label_files` pair by the name without extension; a prediction ``case_0000``
    pairs with the reference ``case`` when nothing else does (nnU-Net image naming).

    Raises:
        ConfigError: ``ref`` is neither, or a manifest without label maps.
        DataError: no predicted label maps.
    """
    pred = _prediction_files(pred_dir)
    if not pred:
        formats = ", ".join(LABEL_MAP_SUFFIXES)
        raise DataError(
            f"no predicted label maps (<case_id> with {formats}) in the prediction folder",
            path=pred_dir,
            hint="point at the output folder of `medseg predict` (or another tool's)",
        )
    if ref.is_file() and ref.suffix.lower() == ".json":
        return _manifest_plan(pred, ref)
    if ref.is_dir():
        return _folder_plan(pred_dir, pred, ref)
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
    try:
        volume = onto_grid(
            read_volume(map_path), ref.affine, ref.shape, atol_mm=atol_mm, what="instance map"
        )
    except GeometryError as err:
        raise GeometryError(err.message, case_id=case_id, hint=err.hint) from err
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
