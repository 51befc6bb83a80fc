"""DICOM SEG content: segment codes as configured, laterality, algorithm identification, no
empty frames, dciodvfy-valid; on a real CT series and on synthetic OCT."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr._concepts_dict import concepts
from typer.testing import CliRunner

from medseg.cli import app
from medseg.coding import Code, LabelCoding, default_coding, resolve_codings
from medseg.drawing import colour_of, rgb
from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.io.dicom_seg import SegContent, checkpoint_version, write_dicom_seg
from medseg.io.grid import onto_grid
from medseg.io.label_files import read_label_map
from medseg.io.read import read_volume
from medseg.manifest.build import build_manifest
from medseg.manifest.schema import save_manifest
from medseg.synth.truth import Truth

CONFIGURED = {
    1: LabelCoding(
        category=Code(value="91723000", scheme="SCT", meaning="Anatomical Structure"),
        type=Code(value="10200004", scheme="SCT", meaning="Liver"),
        color=(10, 200, 30),
    ),
    2: LabelCoding(
        category=Code(value="49755003", scheme="SCT", meaning="Morphologically Abnormal Structure"),
        type=Code(value="108369006", scheme="SCT", meaning="Neoplasm"),
        anatomic_region=Code(value="10200004", scheme="SCT", meaning="Liver"),
    ),
}


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed: `apt-get install dicom3tools` (.ci/run installs it)")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _code(item: pydicom.Dataset) -> tuple[str, str, str]:
    return (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


def _as_tuple(code: Code) -> tuple[str, str, str]:
    return (code.value, code.scheme, code.meaning)


def _check_frames(seg: pydicom.Dataset, expected: int) -> None:
    """Every frame holds segmented pixels, and there are as many as (slice, label) pairs (an
    empty prediction: one empty frame, the least a SEG can hold)."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), -1)
    if expected == 0:
        assert int(seg.NumberOfFrames) == 1 and not pixels.any()
        return
    assert int(seg.NumberOfFrames) == expected
    assert pixels.any(axis=1).all()


def _segments(path: Path) -> dict[str, pydicom.Dataset]:
    return {s.SegmentLabel: s for s in pydicom.dcmread(path).SegmentSequence}


def test_default_codes_are_the_dicom_standards() -> None:
    """Each default code's meaning is its meaning in DICOM PS3.16 (pydicom's copy of it)."""
    meanings: dict[str, set[str]] = {}
    for table in concepts["SCT"].values():
        for value, (meaning, _) in table.items():
            meanings.setdefault(value, set()).add(meaning.casefold())
    names = ["IRF", "srf", "PED", "retina", "liver", "Kidney", "tumour", "cyst", "lesion", "x"]
    for name in names:
        for lesion in (True, False):
            coding = default_coding(name, 1, lesion=lesion)
            for code in (coding.category, coding.type, coding.anatomic_region):
                if code is not None:
                    assert code.scheme == "SCT"
                    assert code.meaning.casefold() in meanings[code.value], code
    assert default_coding("IRF", 1, lesion=True).type.meaning == "Edema"
    assert default_coding("subretinal fluid", 2, lesion=True).type.meaning == "Body fluid"
    assert default_coding("organ", 1, lesion=False).type.meaning == "Organ"
    assert default_coding("SRF", 2, lesion=True).color == rgb(colour_of(2))  # the class palette


def test_resolve_codings_priority_and_unknown_labels() -> None:
    names = {0: "background", 1: "liver", 2: "tumor"}
    custom = {"type": {"value": "1", "scheme": "99X", "meaning": "M"},
              "category": {"value": "2", "scheme": "99X", "meaning": "C"}}  # fmt: skip
    got = resolve_codings(names, [2], {"TUMOR": custom}, {"2": CONFIGURED[2].model_dump()})
    assert got[2].type.scheme == "99X" and got[1].type.meaning == "Liver"
    assert resolve_codings(names, [2], {}, {"2": CONFIGURED[2]})[2] == CONFIGURED[2]
    with pytest.raises(ValueError, match="unknown labels"):
        resolve_codings(names, [2], {"spleen": custom})


def test_seg_on_a_real_ct_series_with_configured_codes(tmp_path: Path) -> None:
    from pydicom.data import DATA_ROOT

    series = Path(DATA_ROOT) / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
    volume = read_volume(series)  # a real 5-slice CT series shipped with pydicom
    labels = np.zeros(volume.shape, np.uint8)
    x, y, _ = volume.shape
    labels[x // 4 : x // 2, y // 4 : y // 2, 1:3] = 1
    labels[x // 2 : x // 2 + 8, y // 2 : y // 2 + 8, 2] = 2
    content = SegContent(
        label_names={0: "background", 1: "liver", 2: "tumour", 3: "absent"},
        codings=CONFIGURED,
        series_description="medseg liver_ct",
        algorithm_version=checkpoint_version(["ab" * 32]),
        algorithm_parameters={"medseg": "9.9", "workflow": "liver_ct"},
    )
    out = tmp_path / "ct.seg.dcm"
    write_dicom_seg(volume.with_array(labels), volume.meta["files"], out, content=content)
    assert _dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert ds.SeriesDescription == "medseg liver_ct" and "Laterality" not in ds
    _check_frames(ds, expected=2 + 1)  # label 1 on slices 1-2, label 2 on slice 2
    segments = _segments(out)
    assert list(segments) == ["liver", "tumour", "absent"]
    for name, value in (("liver", 1), ("tumour", 2)):
        seg = segments[name]
        assert _code(seg.SegmentedPropertyCategoryCodeSequence[0]) == _as_tuple(
            CONFIGURED[value].category
        )
        assert _code(seg.SegmentedPropertyTypeCodeSequence[0]) == _as_tuple(CONFIGURED[value].type)
        algorithm = seg.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "medseg" and algorithm.AlgorithmVersion == "ab" * 32
        assert "workflow=liver_ct" in algorithm.AlgorithmParameters
    assert _code(segments["tumour"].AnatomicRegionSequence[0])[2] == "Liver"
    lab = hd.color.CIELabColor.from_dicom_value(segments["liver"].RecommendedDisplayCIELabValue)
    assert np.allclose(lab.to_rgb(), (10, 200, 30), atol=1)
    assert "AnatomicRegionSequence" not in segments["liver"]
    # the default coding of an unconfigured label (as a lesion)
    assert segments["absent"].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Lesion"
    # and highdicom reads it back: the tumour on the third slice only
    seg = hd.seg.segread(out)
    assert seg.get_segment_description(2).segmented_property_type.meaning == "Neoplasm"


def test_checkpoint_version_of_an_ensemble() -> None:
    assert checkpoint_version(["a" * 64]) == "a" * 64
    both = checkpoint_version(["a" * 64, "b" * 64])
    assert len(both) == 64 and both not in ("a" * 64, "b" * 64)


def _coded_oct_manifest(root: Path, tmp_path: Path) -> Path:
    """The encoded OCT cohort's manifest, its labels.json coding IRF with a custom code."""
    labels = tmp_path / "labels"
    shutil.copytree(root / "labels", labels)
    spec = json.loads((labels / "labels.json").read_text())
    spec["codes"] = {"1": {"category": {"value": "49755003", "scheme": "SCT",
                                        "meaning": "Morphologically Abnormal Structure"},
                           "type": {"value": "367643001", "scheme": "SCT", "meaning": "Cyst"},
                           "color": [1, 2, 250]}}  # fmt: skip
    (labels / "labels.json").write_text(json.dumps(spec))
    manifest = tmp_path / "coded.json"
    built = build_manifest(root / "images", manifest, labels_dir=labels, n_folds=2)
    save_manifest(built.manifest, manifest)
    return manifest


def test_oct_seg_codes_from_labels_json_and_workflow(
    tmp_path: Path, encoded: Callable[[str], Path], oracle_predictor: Callable
) -> None:
    root = encoded("oct")
    manifest = _coded_oct_manifest(root, tmp_path)
    srf = ("label_codes.SRF={category: {value: '91720002', scheme: SCT, meaning: Body Substance},"
           " type: {value: '32457005', scheme: SCT, meaning: Body fluid}}")  # fmt: skip
    predictor = oracle_predictor("oct", f"manifest={manifest}", srf)
    results = list(
        predict_cases(predictor, cases_from_inputs([root / "images"]), tmp_path / "out",
                      BatchOptions(dicom_seg=True, preview=False))
    )  # fmt: skip
    assert all(r.status == "done" for r in results), [r.error for r in results]
    run = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert run["label_codes"]["1"]["type"]["meaning"] == "Cyst"
    for case in Truth.load(root / "truth.json").cases:
        path = tmp_path / "out" / f"{case.case_id}.seg.dcm"
        assert _dciodvfy_errors(path) == []
        segments = _segments(path)
        irf, srf_segment = segments["IRF"], segments["SRF"]
        assert irf.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Cyst"  # labels.json
        assert srf_segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91720002"
        region = irf.AnatomicRegionSequence[0]  # no region configured: the eye, with its side
        assert _code(region) == ("81745001", "SCT", "Eye")
        side = {"OD": "Right", "OS": "Left"}[case.laterality]
        assert region.AnatomicRegionModifierSequence[0].CodeMeaning == side
        ds = pydicom.dcmread(path)
        assert ds.SeriesDescription.endswith(case.laterality)
        label = read_volume(root / case.label).array
        expected = sum(int((label == v).any(axis=(0, 1)).sum()) for v in (1, 2))
        _check_frames(ds, expected)
        # frames left out read back as background: the SEG is the NIfTI label map
        nifti = read_label_map(tmp_path / "out" / f"{case.case_id}.nii.gz")
        back = onto_grid(read_label_map(path, label_names=predictor.label_names),
                         nifti.affine, nifti.shape, what="SEG")  # fmt: skip
        np.testing.assert_array_equal(back.array, nifti.array)


def test_trained_run_seg_names_its_checkpoint_and_default_codes(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    scan = sorted((synth_dir("oct", "dicom", patients=3) / "images").rglob("*.dcm"))[0]
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["--no-progress", "predict", str(trained_run), str(scan), "-o", str(out),
              "--dicom-seg", "--no-preview"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run_report.json").read_text())
    (case,) = run["cases"]
    path = out / case["outputs"]["dicom_seg"]
    assert _dciodvfy_errors(path) == []
    segments = _segments(path)
    algorithm = segments["IRF"].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmVersion == run["checkpoints"][0]["sha256"]
    assert segments["IRF"].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Edema"
    assert segments["SRF"].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Body fluid"
    assert _code(segments["SRF"].AnatomicRegionSequence[0])[2] == "Retina"
