"""2D data through the CLI, with no workflow edits: one-slice NIfTI, PNG (grey with 0/255 masks,
RGB with palette masks) and TIFF go through manifest build, plan (2D from the data), train (a few
iterations), predict, evaluate and report; every output sits on its source's pixel grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config.load import load_resolved
from medseg.io.image_files import ImageFileRef
from medseg.io.nifti import read_nifti
from medseg.io.read import read_volume
from medseg.manifest.schema import load_manifest
from tests.data2d import COLUMNS, ROWS, write_2d_dataset, write_workflow

runner = CliRunner()

# kind -> extra `manifest build` options (--spacing, --pairs or --labels with names)
BUILD = {
    "nifti_one_slice": [
        "--labels",
        "{root}/labels",
        "--label-names",
        "1=disk",
        "--lesion-labels",
        "1",
    ],
    "png_grey": ["--labels", "{root}/labels", "--spacing", "0.2"],
    "png_rgb": ["--labels", "{root}/labels", "--label-names", "1=disk"],
    "tiff": ["--pairs", "{root}/pairs.csv"],
}
SPACING = {
    "nifti_one_slice": (0.5, 2.0, 0.8),
    "png_grey": (0.2, 0.2, 1.0),
    "png_rgb": (1.0, 1.0, 1.0),
    "tiff": (0.25, 0.25, 1.0),
}


def invoke(*args: object) -> str:
    result = runner.invoke(app, ["--no-progress", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _pixel_grid(source: Path) -> tuple[int, int]:
    """(rows, columns) of a PNG/TIFF file."""
    with Image.open(source) as img:
        return img.size[1], img.size[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(BUILD))
def test_2d_data_set_through_every_stage(tmp_path: Path, kind: str, one_torch_thread: None) -> None:
    root = write_2d_dataset(tmp_path / "data", kind)
    manifest = tmp_path / "m.json"
    build = [a.format(root=root) for a in BUILD[kind]]
    invoke("manifest", "build", root / "images", "-o", manifest, "--folds", "2", *build)
    loaded = load_manifest(manifest)
    assert len(loaded.cases) == 4 and all(c.label for c in loaded.cases)
    assert loaded.channels == (["red", "green", "blue"] if kind == "png_rgb" else ["image"])
    assert loaded.label_mapping == ({"255": 1} if kind == "png_grey" else {})
    workflow = write_workflow(tmp_path / "wf.yaml", manifest)
    run = tmp_path / "run"
    invoke("train", workflow, "-o", run)
    resolved = load_resolved(run / "resolved_workflow.yaml")
    assert resolved.task.dims == "2d" and resolved.plan.in_channels == len(loaded.channels)
    assert resolved.slice_axis == (1 if kind == "nifti_one_slice" else 2)  # the one-voxel axis
    assert (run / "fold_0" / "checkpoint_last.pt").is_file()
    invoke("predict", run, manifest, "-o", tmp_path / "pred")
    invoke("evaluate", tmp_path / "pred", "--ref", manifest, "-o", tmp_path / "eval")
    invoke(
        "report",
        tmp_path / "pred",
        "-o",
        tmp_path / "reports",
        "--images",
        manifest,
        "--eval",
        tmp_path / "eval",
    )
    for case in loaded.cases:
        source = case.images[loaded.channels[0]]
        image = read_volume(source, root=loaded.root)
        pred = read_nifti(tmp_path / "pred" / f"{case.case_id}.nii.gz")
        assert pred.shape == image.shape
        np.testing.assert_allclose(pred.affine, image.affine, atol=1e-6)
        np.testing.assert_allclose(pred.spacing, SPACING[kind], atol=1e-6)
        assert set(np.unique(pred.array)) <= {0, 1}
        if kind != "nifti_one_slice":  # the label map is the image's pixel grid, transposed
            path = Path(source.path) if isinstance(source, ImageFileRef) else Path(source)
            assert pred.array[:, :, 0].T.shape == _pixel_grid(loaded.root / path) == (ROWS, COLUMNS)
        assert (tmp_path / "pred" / f"{case.case_id}.png").is_file()
        assert (tmp_path / "reports" / case.patient_id / "report.html").is_file()
    cases = (tmp_path / "eval" / "case_metrics.csv").read_text().splitlines()
    assert len(cases) == 1 + 4  # one class, four cases
    if kind == "png_grey":  # files, with the spacing given again: the same label maps
        invoke("predict", run, root / "images", "-o", tmp_path / "files", "--spacing", "0.2")
        for case in loaded.cases:
            a = read_nifti(tmp_path / "files" / f"{case.case_id}.nii.gz")
            b = read_nifti(tmp_path / "pred" / f"{case.case_id}.nii.gz")
            np.testing.assert_allclose(a.affine, b.affine)
            np.testing.assert_array_equal(a.array, b.array)
