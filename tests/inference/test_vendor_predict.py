"""``predict`` on vendor OCT exports: the label map is a NIfTI on the vendor volume's own grid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.io.nifti import read_nifti
from medseg.io.read import read_volume
from tests.vendor_data import HEYEX_XML, LINE_VOL, vendor_file


@pytest.mark.parametrize("relative", [LINE_VOL, HEYEX_XML])
def test_predict_vendor_export_writes_nifti_on_its_grid(
    tmp_path: Path, oracle_predictor: Callable, relative: str
) -> None:
    path = vendor_file(relative)
    source = read_volume(path)
    spacing = ", ".join(f"{s:.9g}" for s in source.spacing)
    predictor = oracle_predictor(
        "oct",
        f"preprocess.target_spacing=[{spacing}]",  # native grid: no resampling to blur the check
        "infer.crop_foreground=false",
        "infer.skip_empty_windows=false",
    )
    plan = predictor.resolved.plan.model_copy(update={"median_spacing": source.spacing})
    predictor.resolved = predictor.resolved.model_copy(update={"plan": plan})
    results = list(
        predict_cases(predictor, cases_from_inputs([path]), tmp_path, BatchOptions(dicom_seg=True))
    )
    assert [r.status for r in results] == ["done"], [r.error for r in results]
    result = results[0]
    assert (result.laterality, result.modality) == ("OD", "OPT")
    assert result.study_date == source.meta["study_date"]
    assert "dicom_seg" not in result.outputs  # DICOM SEG only for DICOM sources
    pred = read_nifti(tmp_path / result.outputs["labels"])
    assert pred.shape == source.shape
    np.testing.assert_allclose(pred.affine, source.affine, atol=1e-6)
    # the oracle labels each voxel by its own intensity (class k nearest 100 k): any shift, flip
    # or transposition of the grid would move the label map off the image
    classes = predictor.resolved.num_classes
    expected = np.argmin(
        np.abs(source.array[..., None].astype(np.float32) - 100.0 * np.arange(classes)), axis=-1
    )
    assert float((pred.array == expected).mean()) > 0.999
