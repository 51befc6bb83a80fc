"""Real DICOM conformance: every DICOM file pydicom and the pydicom-data wheel ship, and the DICOM
test files of highdicom and dcmqi (``benchmarks/get_real_data.py dicom-corpus``), goes through
discovery, series QC and reading. Each reads with the geometry its own header gives or is listed
with a specific reason; none raises an internal error.

Each corpus is run file by file and folder by folder (``manifest build``'s discovery); the counts
print with ``pytest -s``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import real_data_dir
from tests.io.dicom_corpus import Tally, classify_files, classify_folder, corpus_files


def _pydicom_roots() -> list[Path]:
    from pydicom.data import DATA_ROOT

    return [Path(DATA_ROOT) / name for name in ("test_files", "charset_files", "palettes")]


def _pydicom_data_roots() -> list[Path]:
    from pydicom.data import external_data_sources

    sources = external_data_sources()
    assert "pydicom-data" in sources, "the pydicom-data wheel is a test dependency (dev extra)"
    return [Path(sources["pydicom-data"].data_path)]


def _fetched_roots(name: str) -> list[Path]:
    root = real_data_dir("dicom-corpus")
    if root is None or not (root / name).is_dir():
        pytest.skip(
            f"{name} test files not found: run `python benchmarks/get_real_data.py dicom-corpus` "
            "(copies them from a local mirror of the repository)"
        )
    return [root / name]


def _run(roots: list[Path], name: str) -> Tally:
    tally = Tally()
    classify_files(corpus_files(roots), tally)
    for root in roots:
        classify_folder(root, tally)
    print(tally.line(name))
    assert tally.internal == {}, "internal errors:\n" + "\n".join(
        f"{p}: {e}" for p, e in tally.internal.items()
    )
    assert tally.wrong == {}, "geometry or voxels differ from the header:\n" + "\n".join(
        f"{p}: {e}" for p, e in tally.wrong.items()
    )
    assert len(tally.read) + len(tally.listed) == tally.files
    vague = [(p, r) for p, r in [*tally.listed.items(), *tally.series_listed] if len(r) < 25]
    assert vague == [], f"reasons too vague to act on: {vague}"
    return tally


def _reason(tally: Tally, name: str) -> str:
    found = [r for p, r in tally.listed.items() if Path(p).name == name]
    assert found, f"{name} was not listed"
    return found[0]


def _read_or(tally: Tally, name: str, code: str) -> bool:
    """``name`` read (once single slices are volumes) or listed with ``code``."""
    return any(Path(p).name == name for p in tally.read) or code in _reason(tally, name)


def test_pydicom_files() -> None:
    tally = _run(_pydicom_roots(), "pydicom")
    assert tally.files >= 170
    assert "not_an_image" in _reason(tally, "rtstruct.dcm")  # no preamble, no pixels
    assert "not_an_image" in _reason(tally, "rtplan.dcm")
    assert "pixel data is truncated" in _reason(tally, "MR_truncated.dcm")
    assert "malformed NumberOfFrames (IS) value '1A'" in _reason(tally, "badVR.dcm")
    assert "no SOP Class UID" in _reason(tally, "UN_sequence.dcm")
    assert "no per-frame ImagePositionPatient" in _reason(tally, "rtdose.dcm")
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm"):
        assert _read_or(tally, name, "single_slice")
    # the dicomdir test folders hold real multi-slice series: read (with SimpleITK agreeing) or
    # listed for what they are (a sparse selection of slices, a localizer pair, mixed planes)
    assert len(tally.series_read) >= 1 and tally.sitk_checked >= 1
    reasons = " ".join(r for _, r in tally.series_listed)
    for code in ("missing_slice", "localizer", "mixed_orientations", "DICOMDIR media index"):
        assert code in reasons


def test_pydicom_data_files() -> None:
    tally = _run(_pydicom_data_roots(), "pydicom-data")
    assert tally.files >= 60
    assert any(Path(p).name == "eCT_Supplemental.dcm" for p in tally.read)  # enhanced CT
    assert "segmentation" in _reason(tally, "liver.dcm")
    assert _read_or(tally, "explicit_VR-UN.dcm", "single_slice")  # geometry stored as UN
    assert "ImageOrientationPatient, PixelSpacing" in _reason(tally, "emri_small.dcm")


@pytest.mark.parametrize("name", ["highdicom", "dcmqi"])
def test_fetched_test_files(name: str) -> None:
    tally = _run(_fetched_roots(name), name)
    assert tally.files >= 20
    if name == "highdicom":
        assert "segmentation" in _reason(tally, "seg_image_ct_binary_overlap.dcm")
        assert "not_an_image" in _reason(tally, "sr_document.dcm")
    else:  # a real GE CT (empty SpecificCharacterSet), a zipped MR series, Enhanced CT
        assert len(tally.series_read) >= 6 and tally.sitk_checked >= 4
        assert sum(Path(p).name == "mf.dcm" for p in tally.read) == 2
        assert "not_an_image" in _reason(tally, "sr.dcm")
