"""``manifest check``: geometry, label values, NaN; exit 1 with the case id on errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medseg.cli import app
from medseg.io.nifti import read_nifti, write_nifti
from medseg.manifest.build import build_manifest
from medseg.manifest.check import check_manifest
from medseg.manifest.schema import load_manifest, save_manifest


def _manifest(tmp_path: Path, synth_dir: Callable[..., Path]) -> Path:
    root = synth_dir("ct", "nifti")
    work = tmp_path / "data"
    import shutil

    shutil.copytree(root, work)
    out = tmp_path / "m.json"
    save_manifest(
        build_manifest(work / "images", out, labels_dir=work / "labels", n_folds=2).manifest, out
    )
    return out


def test_clean_manifest_passes(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    path = _manifest(tmp_path, synth_dir)
    result = CliRunner().invoke(app, ["--no-progress", "manifest", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 cases checked: 2 ok, 0 with errors" in result.output


def test_label_affine_mismatch_exits_1_naming_case(
    tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    path = _manifest(tmp_path, synth_dir)
    manifest = load_manifest(path)
    case = manifest.cases[1]
    label = read_nifti(manifest.resolve(case.label))
    shifted = label.affine.copy()
    shifted[:3, 3] += [0.0, 0.0, 1.5]  # half a slice off
    write_nifti(type(label)(label.array, shifted), manifest.resolve(case.label))
    result = CliRunner().invoke(app, ["--no-progress", "manifest", "check", str(path)])
    assert result.exit_code == 1
    assert case.case_id in result.output and "affine_mismatch" in result.output
    assert "1.5 mm" in result.output


def test_undeclared_values_nan_and_shape(tmp_path: Path, synth_dir: Callable[..., Path]) -> None:
    path = _manifest(tmp_path, synth_dir)
    manifest = load_manifest(path)
    a, b = manifest.cases
    label = read_nifti(manifest.resolve(a.label))
    bad = label.array.copy()
    bad[0, 0, 0] = 7
    write_nifti(label.with_array(bad), manifest.resolve(a.label))
    image = read_nifti(manifest.resolve(b.images["image"]))
    nan_image = image.array.astype(np.float32)
    nan_image[1, 1, 1] = np.nan
    write_nifti(image.with_array(nan_image), manifest.resolve(b.images["image"]))
    results = {r.case_id: r for r in check_manifest(load_manifest(path))}
    assert [i.code for i in results[a.case_id].issues if i.severity == "error"] == [
        "undeclared_label_values"
    ]
    assert "[7]" in results[a.case_id].issues[0].message
    assert [i.code for i in results[b.case_id].issues if i.severity == "error"] == ["nan_inf"]


def test_unreadable_label_is_an_error_not_a_crash(
    tmp_path: Path, synth_dir: Callable[..., Path]
) -> None:
    path = _manifest(tmp_path, synth_dir)
    manifest = load_manifest(path)
    manifest.resolve(manifest.cases[0].label).write_bytes(b"garbage")
    results = list(check_manifest(manifest))
    assert results[0].issues[0].code == "unreadable" and not results[0].ok
    assert results[1].ok
