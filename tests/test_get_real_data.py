"""``benchmarks/get_real_data.py``: copies data files out of a git mirror, never fetches."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "get_real_data", REPO / "benchmarks" / "get_real_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def _fake_repo(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir()
    _git(path, "init", "-q")
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    _git(path, "add", ".")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data")
    return path


def test_dicom_corpus_is_copied_from_mirrors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    monkeypatch.setattr(script, "MIRROR_ROOT", tmp_path / "no_mirrors")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("701-ADCb500/000000.dcm", b"slice0")
    dcmqi = _fake_repo(
        tmp_path / "dcmqi",
        {
            "data/segmentations/ct-3slice/01.dcm": b"ct",
            "data/segmentations/23x38x3/seg/label.seg": b"seg",
            "data/segmentations/heart_seg.nrrd": b"nrrd",  # not DICOM: left out
            "data/paramaps/pm-example-dcm.zip": zipped.getvalue(),
            "README.md": b"docs",
        },
    )
    root = tmp_path / "real"
    # only one mirror given: the other repository is reported with the clone command, exit 1
    assert script.main(["dicom-corpus", "--root", str(root), "--mirror", str(dcmqi)]) == 1
    assert "git clone --depth 1 https://github.com/ImagingDataCommons/highdicom" in (
        capsys.readouterr().err
    )
    base = root / "dicom-corpus" / "dcmqi" / "data"
    found = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
    assert found == [
        "paramaps/pm-example-dcm/701-ADCb500/000000.dcm",
        "segmentations/23x38x3/seg/label.seg",
        "segmentations/ct-3slice/01.dcm",
    ]
    assert (base / "segmentations/ct-3slice/01.dcm").read_bytes() == b"ct"
    highdicom = _fake_repo(tmp_path / "highdicom", {"data/test_files/ct_image.dcm": b"x"})
    assert script.main(["dicom-corpus", "--root", str(root), "--mirror", str(highdicom)]) == 0
    assert (root / "dicom-corpus/highdicom/data/test_files/ct_image.dcm").read_bytes() == b"x"
