"""DICOM that medseg writes validates with dciodvfy (dicom3tools): the synthetic CT and OCT of
``medseg synth``, and DICOM SEG on a real CT (also with empty, missing and odd attributes), on
synthetic OCT and CT, and on every pydicom test image with a geometry."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medseg.errors import DataError
from medseg.io.dicom_header import read_header
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.geometry import dicom_affine_lps, lps_to_ras_affine, slice_normal
from medseg.io.nifti import read_nifti
from medseg.io.read import read_volume
from medseg.io.volume import Volume
from medseg.synth.truth import Truth
from tests.helpers import real_data_dir
from tests.io.dicom_corpus import corpus_files

pytestmark = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed: `apt-get install dicom3tools` (.ci/run installs it)",
)

OPT_VALIDATOR_DEFECTS = {
    # PS3.3 C.8.17.7 enumerates Concatenation Frame Offset Number 0 and In-concatenation
    # Number / Total Number 1 for Ophthalmic Tomography (concatenations are not permitted);
    # dicom3tools 2022 applies the general multi-frame rules and flags exactly these three.
    "Error - Attribute present when condition unsatisfied (which may not be present otherwise)"
    " Type 1C Conditional Element=<ConcatenationFrameOffsetNumber>"
    " Module=<MultiFrameFunctionalGroupsCommon>",
    "Error - Attribute present when condition unsatisfied (which may not be present otherwise)"
    " Type 1C Conditional Element=<InConcatenationNumber> Module=<MultiFrameFunctionalGroupsCommon>",
    "Error - Cannot be less than or equal to one since then not a Concatenation"
    " - attribute <InConcatenationTotalNumber>",
}
OPT = "1.2.840.10008.5.1.4.1.1.77.1.5.4"


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) dciodvfy reports for one file."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    if pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID == OPT:
        errors = [e for e in errors if e not in OPT_VALIDATOR_DEFECTS]
    return errors, [line for line in lines if line.startswith("Warning")]


def _labels_on(volume: Volume) -> Volume:
    """A two-label map on the volume's grid (blocks in two corners, several slices each)."""
    x, y, z = volume.shape
    labels = np.zeros(volume.shape, dtype=np.uint8)
    labels[x // 8 : x // 2, y // 8 : y // 2, : max(1, z // 2)] = 1
    labels[x // 2 :, y // 2 :, z // 2 :] = 2
    return volume.with_array(labels)


def _seg(volume: Volume, out: Path) -> Path:
    write_dicom_seg(
        _labels_on(volume),
        volume.meta["files"],
        out,
        label_names={1: "organ", 2: "lesion"},
        frame_order=volume.meta.get("frame_order"),
    )
    return out


def _single_slice(path: Path) -> Volume:
    """A one-slice volume on a DICOM image's grid (whether or not medseg reads single slices)."""
    h = read_header(path)
    step = slice_normal(h.orientation) * (h.slice_thickness or 1.0)
    affine = dicom_affine_lps(h.orientation, h.position, h.pixel_spacing, step)
    array = np.zeros((h.columns, h.rows, 1), dtype=np.int16)
    return Volume(array, lps_to_ras_affine(affine), {"files": [str(path)]})


def test_synthetic_ct_and_oct_dicom(synth_dir: Callable[..., Path]) -> None:
    files = sorted((synth_dir("oct", "dicom") / "images").rglob("*.dcm"))
    ct = sorted((synth_dir("ct", "dicom") / "images").rglob("*.dcm"))
    files += [ct[0], ct[-1]]
    assert len(files) >= 4
    for path in files:
        errors, warnings = dciodvfy(path)
        assert errors == [], path
        print(f"{path.name}: {len(warnings)} warnings", *warnings, sep="\n  ")


def test_seg_on_synthetic_oct_and_ct(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    for kind in ("oct", "ct"):
        root = synth_dir(kind, "dicom")
        case = Truth.load(root / "truth.json").cases[0]
        source = sorted((root / "images").rglob("*.dcm"))[0]
        volume = read_volume(source if kind == "oct" else source.parent)
        truth = read_nifti(root / case.label)
        assert truth.shape == volume.shape
        seg = tmp_path / f"{kind}.seg.dcm"
        write_dicom_seg(
            volume.with_array(truth.array.astype(np.uint8)),
            volume.meta["files"],
            seg,
            label_names={1: "a", 2: "b"},
            frame_order=volume.meta.get("frame_order"),
        )
        errors, warnings = dciodvfy(seg)
        assert errors == [], (kind, errors)
        print(f"SEG on synthetic {kind}: {len(warnings)} warnings", *warnings, sep="\n  ")
        assert int(pydicom.dcmread(seg).NumberOfFrames) == 2 * volume.shape[2]  # x 2 segments


def _odd(ds: pydicom.Dataset) -> None:
    """Attributes real scanners write that a SEG must not copy as they are."""
    ds.SpecificCharacterSet = ""  # the GE CT of issue 13
    ds.PatientSex = "MALE"
    ds.StudyDate = "2004.01.19"  # ACR-NEMA style
    ds.StudyTime = "07:27"
    for keyword in ("AccessionNumber", "StudyID", "ReferringPhysicianName", "SliceThickness"):
        del ds[keyword]


def test_seg_on_a_real_ct_with_empty_missing_and_odd_attributes(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))  # a GE CT slice
    assert dciodvfy(_seg(_single_slice(source), tmp_path / "plain.seg.dcm"))[0] == []
    ds = pydicom.dcmread(source)
    _odd(ds)
    odd = tmp_path / "odd.dcm"
    ds.save_as(odd)
    seg = _seg(_single_slice(odd), tmp_path / "odd.seg.dcm")
    errors, warnings = dciodvfy(seg)
    assert errors == [], errors
    print(f"SEG on a CT with odd attributes: {len(warnings)} warnings", *warnings, sep="\n  ")
    written = pydicom.dcmread(seg)
    assert "SpecificCharacterSet" not in written and written.PatientSex == ""
    assert (written.StudyDate, written.StudyTime) == ("20040119", "072700")
    assert written.AccessionNumber == "" and written.StudyID == ""
    assert written.PatientName == ds.PatientName and written.StudyInstanceUID == ds.StudyInstanceUID
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]  # ISO 2022: an empty first value is allowed
    ds.save_as(odd)
    assert dciodvfy(_seg(_single_slice(odd), seg))[0] == []
    assert pydicom.dcmread(seg).SpecificCharacterSet == ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    del ds.FrameOfReferenceUID
    ds.save_as(odd)
    with pytest.raises(DataError, match="no FrameOfReferenceUID"):
        _seg(_single_slice(odd), tmp_path / "none.seg.dcm")


def test_seg_on_the_ge_ct_series_of_issue_13(tmp_path: Path) -> None:
    """The real 3-slice GE CT (empty SpecificCharacterSet) from dcmqi's test data."""
    root = real_data_dir("dicom-corpus")
    folder = None if root is None else root / "dcmqi/data/segmentations/ct-3slice"
    if folder is None or not folder.is_dir():
        pytest.skip("dcmqi test files not found: `python benchmarks/get_real_data.py dicom-corpus`")
    assert pydicom.dcmread(folder / "01.dcm").SpecificCharacterSet == ""
    errors, warnings = dciodvfy(_seg(read_volume(folder), tmp_path / "ge.seg.dcm"))
    assert errors == [], errors
    print(f"SEG on the GE CT: {len(warnings)} warnings", *warnings, sep="\n  ")


def _sources_with_geometry() -> list[Path]:
    from pydicom.data import DATA_ROOT, external_data_sources

    roots = [
        Path(DATA_ROOT) / "test_files",
        Path(external_data_sources()["pydicom-data"].data_path),
    ]
    found, seen = [], set()
    for path in corpus_files(roots):
        try:
            h = read_header(path)
        except Exception:
            continue
        usable = h.modality != "SEG" and h.rows and h.samples_per_pixel == 1
        has_geometry = None not in (h.position, h.orientation, h.pixel_spacing)
        if usable and has_geometry and not h.is_multiframe and h.sop_instance_uid not in seen:
            seen.add(h.sop_instance_uid)
            found.append(path)
    return found


def test_seg_on_every_pydicom_image_adds_no_error(tmp_path: Path) -> None:
    """Each single-frame pydicom / pydicom-data image with a geometry gets a SEG that dciodvfy
    finds no error in beyond those of the source itself, or a clear refusal."""
    sources = _sources_with_geometry()
    assert len(sources) >= 20
    written, refused = 0, {}
    for path in sources:
        seg = tmp_path / f"{path.name}.seg.dcm"
        try:
            _seg(_single_slice(path), seg)
        except DataError as err:
            refused[path.name] = str(err)
            continue
        inherited = set(dciodvfy(path)[0])
        new = [e for e in dciodvfy(seg)[0] if e not in inherited]
        assert new == [], (path, new)
        written += 1
    assert written >= 20
    assert all("FrameOfReferenceUID" in r or "highdicom" in r for r in refused.values()), refused
