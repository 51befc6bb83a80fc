"""The files one predicted case writes, all or nothing per output.

Per case in ``OUT_DIR``: ``<case_id>.nii.gz`` (label map, primary), then ``<case_id>_instances
.nii.gz`` + ``<case_id>.json`` (Mask R-CNN), ``<case_id>.png`` (preview) and ``<case_id>.seg.dcm``
(DICOM SEG of a DICOM source). Every file is written atomically. The label map comes first and
a failure there fails the case; a later output that fails is removed (with any older copy) and
reported as missing, so no file on disk ever looks complete when its case is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import MedsegError
from medseg.inference.instance_outputs import write_instances
from medseg.inference.predictor import Prediction
from medseg.inference.preview import write_preview
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.nifti import write_nifti
from medseg.io.volume import Volume

logger = logging.getLogger(__name__)

COMPANIONS = {"instances": ("instances_json",)}
"""Outputs written together with another one (and removed with it)."""


@dataclass
class WrittenOutputs:
    """What :func:`write_case_outputs` achieved.

    Attributes:
        outputs: output key -> file name, for the files completely written.
        missing: keys of the outputs that failed (their files removed).
        errors: one ``"<key> not written: <reason>"`` per missing output.
        notes: what was done to the data on the way (resampling, SEG placement).
    """

    outputs: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resampling_notes(volume: Volume) -> list[str]:
    """What reading did to unevenly spaced DICOM slices (``meta["resampled_slices"]``)."""
    info = volume.meta.get("resampled_slices")
    if not info:
        return []
    low, high = info["source_steps_mm"]
    return [
        f"slices unevenly spaced ({low:g}-{high:g} mm): the label map is on a uniform "
        f"{info['uniform_step_mm']:g} mm grid of {len(info['source_positions_mm'])} slices "
        "(the scan was linearly resampled along the slice axis)"
    ]


def _nifti_description(volume: Volume) -> str | None:
    """NIfTI header description (at most 80 characters) when reading resampled the slices."""
    info = volume.meta.get("resampled_slices")
    if not info:
        return None
    n, step = len(info["source_positions_mm"]), info["uniform_step_mm"]
    return f"medseg: {n} uneven DICOM slices resampled to {step:g} mm"


def _seg(
    volume: Volume, prediction: Prediction, label_names: Mapping[int, str], target: Path
) -> list[str]:
    """The DICOM SEG on the source's own frames; returns notes."""
    written = write_dicom_seg(
        prediction.labels,
        volume.meta.get("files") or [],
        target,
        label_names={k: v for k, v in label_names.items() if k != 0},
        frame_order=volume.meta.get("frame_order"),
    )
    if not written.resampled:
        return []
    return [
        f"DICOM SEG frames lie on the {written.n_frames} source slices, each holding the label "
        f"map's nearest slice (up to {written.max_offset_mm:.2f} mm away)"
    ]


def _preview(
    volume: Volume, prediction: Prediction, label_names: Mapping[int, str], target: Path
) -> list[str]:
    write_preview(volume.array, prediction.labels.array, target, label_names=label_names,
                  spacing=volume.spacing)  # fmt: skip
    return []


def _instances(prediction: Prediction, map_path: Path, json_path: Path) -> list[str]:
    write_instances(prediction, map_path, json_path)
    return []


def _writers(
    volume: Volume,
    prediction: Prediction,
    label_names: Mapping[int, str],
    out_dir: Path,
    outputs: Mapping[str, str],
) -> dict[str, Callable[[], list[str]]]:
    """Writer of every output after the label map, by key, in writing order."""
    writers: dict[str, Callable[[], list[str]]] = {}
    if "instances" in outputs:
        paths = out_dir / outputs["instances"], out_dir / outputs["instances_json"]
        writers["instances"] = lambda: _instances(prediction, *paths)
    if "preview" in outputs:
        preview = out_dir / outputs["preview"]
        writers["preview"] = lambda: _preview(volume, prediction, label_names, preview)
    if "dicom_seg" in outputs:
        target = out_dir / outputs["dicom_seg"]
        writers["dicom_seg"] = lambda: _seg(volume, prediction, label_names, target)
    return writers


def discard_outputs(out_dir: Path, outputs: Mapping[str, str], keys: Sequence[str]) -> None:
    """Remove the files of the outputs ``keys`` (and their companions) from ``out_dir``."""
    for key in keys:
        for name in (key, *COMPANIONS.get(key, ())):
            if name in outputs:
                (out_dir / outputs[name]).unlink(missing_ok=True)


def _reason(err: Exception) -> str:
    if isinstance(err, MedsegError):
        return err.describe()
    return f"internal error ({type(err).__name__}): {err}"


def write_case_outputs(
    volume: Volume,
    prediction: Prediction,
    label_names: Mapping[int, str],
    out_dir: Path,
    outputs: Mapping[str, str],
) -> WrittenOutputs:
    """Write a case's outputs (``outputs``: key -> file name, ``labels`` first).

    Raises:
        Exception: whatever writing the label map raised (nothing else is written then).
    """
    result = WrittenOutputs(notes=resampling_notes(volume))
    write_nifti(
        prediction.labels, out_dir / outputs["labels"], description=_nifti_description(volume)
    )
    for key, writer in _writers(volume, prediction, label_names, out_dir, outputs).items():
        try:
            result.notes += writer()
        except Exception as err:  # a failed extra output leaves the label map usable
            logger.debug("%s failed", outputs[key], exc_info=True)
            discard_outputs(out_dir, outputs, [key])
            result.missing.append(key)
            result.errors.append(f"{key} not written: {_reason(err)}")
    gone = {*result.missing, *(c for k in result.missing for c in COMPANIONS.get(k, ()))}
    result.outputs = {k: v for k, v in outputs.items() if k not in gone}
    return result
