"""Mask R-CNN predictions on the source grid: instance map, label map and instance records.

:func:`predict_instance_case` runs :func:`~medseg.inference.instances.predict_instances` on the
preprocessed image (autocast as in training, ``train.amp``), inverts the instance map to the
source grid with MONAI's ``Invertd`` (nearest neighbour, the inverse of the same orientation and
spacing transforms the U-Net probabilities go through), drops instances smaller than
``postprocess.min_volume_mm3`` (and any that the resampling erased), renumbers the rest ``1..K``
by descending score and derives the semantic label map (``postprocess.fill_holes`` /
``keep_largest`` do not apply to instances, and there is no test-time augmentation). Each
instance is described by :func:`instance_records`.

Instance record (:class:`~medseg.artifacts.InstanceRecord`, one per id of
``<case_id>_instances.nii.gz``, in ``<case_id>.json``, :class:`~medseg.artifacts.InstancesFile`):
``instance_id``, ``label`` (label value), ``label_name``, ``score``, ``n_voxels``,
``volume_mm3``, ``box_voxel`` (``[i0, j0, k0, i1, j1, k1]``: the instance's voxels are
``i0 <= i < i1`` etc. on the source grid, MONAI ``StandardMode`` with voxel ``i`` spanning
``[i, i + 1)``) and ``box_lps_mm`` (``[L0, P0, S0, L1, P1, S1]``: the axis-aligned patient-LPS
box, in mm, of those voxels' extent - voxel edges, not centres).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from medseg.artifacts import InstanceRecord, InstancesFile
from medseg.inference.instances import InstanceMap, instance_settings, predict_instances
from medseg.inference.prediction import Ensemble, Prediction, as_channels, prepare
from medseg.io.atomic import jsonable, write_json_atomic
from medseg.io.nifti import write_nifti
from medseg.io.volume import Volume
from medseg.models.runtime import amp_dtype
from medseg.types import PathLike

__all__ = [
    "box_lps_mm",
    "instance_records",
    "keep_instances",
    "predict_instance_case",
    "write_instances",
]


def predict_instance_case(
    ensemble: Ensemble, scan: Volume | Sequence[Volume], tta: bool | None = None
) -> Prediction:
    """Lesion instances of one scan, returned on the source grid (``seconds`` left to the caller).

    Args:
        ensemble: a Mask R-CNN run's models (pooled over folds), workflow and device.
        scan: the source scan, or one volume per input channel (the first one's grid).
        tta: ignored: Mask R-CNN runs take no test-time augmentation.

    Returns:
        :class:`~medseg.inference.prediction.Prediction` with ``labels`` (semantic map),
        ``instance_map`` (ids, 0 background; both with the source's shape and affine) and
        ``instances`` (records, see the module docstring).
    """
    resolved = ensemble.resolved
    volume = as_channels(resolved, scan)[0]
    prepared = prepare(resolved, scan)
    found = predict_instances(
        ensemble.models,
        prepared.image(ensemble.device),
        instance_settings(resolved),
        amp_dtype=amp_dtype(resolved, ensemble.device),
    )
    ids = torch.from_numpy(np.ascontiguousarray(found.instance_map, dtype=np.float32))[None]
    inverted = np.rint(prepared.to_source(ids, nearest=True)[0].cpu().numpy()).astype(np.int32)
    if inverted.shape != volume.shape:
        raise RuntimeError(f"inverted instance map {inverted.shape} != source {volume.shape}")
    min_voxels = resolved.postprocess.min_volume_mm3 / volume.voxel_volume_mm3
    kept = keep_instances(InstanceMap(inverted, found.labels, found.scores), min_voxels)
    return Prediction(
        labels=volume.with_array(kept.semantic(), kind="label"),
        instances=instance_records(kept, volume, label_names=resolved.plan.labels),
        instance_map=volume.with_array(kept.instance_map, kind="instances"),
    )


def keep_instances(found: InstanceMap, min_voxels: float) -> InstanceMap:
    """Drop instances with fewer than ``min_voxels`` voxels (or none); renumber by score."""
    sizes = np.bincount(found.instance_map.ravel(), minlength=len(found.labels) + 1)
    order = [i for i in range(len(found.labels)) if sizes[i + 1] > 0 and sizes[i + 1] >= min_voxels]
    order.sort(key=lambda i: -found.scores[i])
    lookup = np.zeros(len(found.labels) + 1, dtype=np.int32)
    lookup[[i + 1 for i in order]] = np.arange(1, len(order) + 1, dtype=np.int32)
    return InstanceMap(
        instance_map=lookup[found.instance_map],
        labels=[found.labels[i] for i in order],
        scores=[found.scores[i] for i in order],
    )


def instance_records(
    found: InstanceMap, volume: Volume, *, label_names: Mapping[str, str]
) -> list[InstanceRecord]:
    """One record per instance of a source-grid map (see the module docstring)."""
    records = []
    bounds = ndimage.find_objects(found.instance_map)
    for index, (label, score) in enumerate(zip(found.labels, found.scores, strict=True)):
        slices = bounds[index] if index < len(bounds) else None
        if slices is None:
            continue
        n_voxels = int(np.count_nonzero(found.instance_map[slices] == index + 1))
        lo = [s.start for s in slices]
        hi = [s.stop for s in slices]
        records.append(
            InstanceRecord(
                instance_id=index + 1,
                label=int(label),
                label_name=label_names.get(str(label), str(label)),
                score=round(float(score), 6),
                n_voxels=n_voxels,
                volume_mm3=n_voxels * volume.voxel_volume_mm3,
                box_voxel=[*lo, *hi],
                box_lps_mm=box_lps_mm(volume, lo, hi),
            )
        )
    return records


def box_lps_mm(volume: Volume, lo: list[int], hi: list[int]) -> list[float]:
    """Axis-aligned LPS box ``[min..., max...]`` (mm) of the voxels ``lo <= index < hi``.

    The voxel edges are at ``index - 0.5`` (voxel centres at integer indices), so the corners
    of the voxel box are ``lo - 0.5`` and ``hi - 0.5``.
    """
    edges = (np.asarray(lo, dtype=float) - 0.5, np.asarray(hi, dtype=float) - 0.5)
    corners = np.array([[edges[b][a] for a, b in enumerate(bits)] for bits in np.ndindex(2, 2, 2)])
    lps = volume.voxel_to_lps(corners)
    return [round(float(v), 4) for v in (*lps.min(axis=0), *lps.max(axis=0))]


def write_instances(prediction: Prediction, map_path: PathLike, json_path: PathLike) -> None:
    """Write ``<case_id>_instances.nii.gz`` (int32 ids) and ``<case_id>.json`` (records).

    Raises:
        ValueError: the prediction has no instance map (not from a Mask R-CNN run).
    """
    if prediction.instance_map is None:
        raise ValueError("the prediction has no instance map")
    write_nifti(prediction.instance_map, map_path, dtype=np.int32)
    payload = InstancesFile(instances=prediction.instances)
    write_json_atomic(json_path, jsonable(payload.model_dump(mode="json")))
