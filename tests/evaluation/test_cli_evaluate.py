"""``medseg evaluate``: exit codes, summary table, clean one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli import app

from .conftest import Cohort, write_predictions

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["--no-progress", *args])


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def test_clean_cohort_exits_0_with_table(cohort: Cohort, tmp_path: Path) -> None:
    pred = write_predictions(cohort, tmp_path / "pred", perturb=False)
    result = invoke("evaluate", str(pred), "--ref", str(cohort.manifest), "-o", str(tmp_path / "e"))
    assert result.exit_code == 0, result.output
    assert "organ" in result.output and "lesion" in result.output and "HD95" in result.output
    assert "4 of 4 cases evaluated, 0 skipped, 0 failed" in result.output
    assert (tmp_path / "e" / "summary.json").is_file()


def test_skipped_cases_exit_1_and_are_listed(
    cohort: Cohort, predictions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    result = invoke(
        "evaluate",
        str(predictions),
        "--ref",
        str(cohort.manifest),
        "-o",
        str(out),
        "--lesion-labels",
        "2",
        "--min-lesion-mm3",
        "5",
        "--match-iou",
        "0",
        "--nsd-tolerance-mm",
        "2",
        "--connectivity",
        "6",
    )
    assert result.exit_code == 1, result.output
    assert f"no prediction {cohort.case_ids[3]}.nii.gz" in result.output
    assert "2 of 5 cases evaluated, 3 skipped, 0 failed" in result.output
    import json

    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["min_iou"] == 0 and settings["connectivity"] == 6
    assert settings["min_lesion_mm3"] == 5 and settings["nsd_tolerance_mm"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--connectivity", "7"], "--connectivity must be 6, 18 or 26"),
        (["--lesion-labels", "tumour"], "unknown lesion label 'tumour'"),
        (["--match-iou", "2"], "--match-iou"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    cohort: Cohort, predictions: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = invoke(
        "evaluate",
        str(predictions),
        "--ref",
        str(cohort.manifest),
        "-o",
        str(tmp_path / "e"),
        *extra,
    )
    assert result.exit_code == 2, result.output
    out = lines(result.output)
    assert len(out) == 1 and message in out[0], out
    assert "Traceback" not in result.output


def test_reference_that_is_not_a_manifest_exits_2(predictions: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "labels.csv"
    bogus.write_text("x")
    result = invoke("evaluate", str(predictions), "--ref", str(bogus), "-o", str(tmp_path / "e"))
    assert result.exit_code == 2
    assert lines(result.output) == [
        f"Error: the reference {str(bogus)!r} is neither a manifest (.json) nor a folder of label "
        "maps Hint: pass --ref data_manifests/NAME.json or a folder of <case_id>.nii.gz"
    ]
