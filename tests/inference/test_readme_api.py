"""The README's Python API example runs as written (on a tiny trained run)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.io.read import read_volume
from medseg.synth.truth import Truth

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(name: str) -> str:
    """The ```python block right after ``<!-- example: NAME -->`` in the README."""
    match = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no example block {name!r}"
    return match.group(1)


def test_readme_python_api_example_runs(
    trained_run: Path,
    synth_dir: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = synth_dir("oct", "nifti")
    case = Truth.load(src / "truth.json").cases[0]
    for folder in ("runs", "scans", "labels"):
        (tmp_path / folder).mkdir()
    (tmp_path / "runs" / "oct_fluid").symlink_to(trained_run)
    shutil.copy(src / case.image, tmp_path / "scans" / "P0001_OD.nii.gz")
    shutil.copy(src / case.label, tmp_path / "labels" / "P0001_OD.nii.gz")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("python-api"), str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert re.search(
        r"IRF Dice \d\.\d{3}, HD95 (\d+\.\d\d|nan) mm, lesions found \d+ of \d+", printed
    )
    assert re.search(r"P0001_OD done \d+", printed)
    scan = read_volume(tmp_path / "scans" / "P0001_OD.nii.gz")
    labels = read_volume(tmp_path / "predictions" / "P0001_OD.nii.gz")
    assert labels.shape == scan.shape and np.allclose(labels.affine, scan.affine)
    assert (tmp_path / "reports" / "P0001_OD" / "report.html").is_file()
