"""The CLI contract: every command registered, clean errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medseg import __version__
from medseg.cli import app

runner = CliRunner()

TOP_COMMANDS = ["synth", "manifest", "plan", "train", "predict", "evaluate", "report", "demo"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in TOP_COMMANDS:
        assert command in result.output
    assert {"oct", "ct"} <= set(invoke("synth", "--help").output.split())
    manifest_help = invoke("manifest", "--help").output
    assert "build" in manifest_help and "check" in manifest_help


@pytest.mark.parametrize(
    "command", [*TOP_COMMANDS, "synth oct", "synth ct", "manifest build", "manifest check"]
)
def test_each_command_has_help(command: str) -> None:
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert "<bool>" not in result.output  # flags take no value and must not read as if they did


def test_dicom_seg_is_a_plain_flag() -> None:
    row = next(
        line for line in invoke("predict", "--help").output.splitlines() if "--dicom-seg" in line
    )
    assert "<" not in row and "Also write DICOM SEG" in row


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"medseg {__version__}"


def test_bad_option_is_one_line_exit_2(tmp_path: Path) -> None:
    result = invoke("synth", "ct", str(tmp_path / "x"), "--bogus")
    assert result.exit_code == 2
    out = lines(result.output)
    assert len(out) == 1, out
    assert "No such option: --bogus" in out[0]
    assert "medseg synth ct --help" in out[0]


def test_bad_choice_is_exit_2(tmp_path: Path) -> None:
    result = invoke("synth", "oct", str(tmp_path / "x"), "--format", "jpeg")
    assert result.exit_code == 2
    assert len(lines(result.output)) == 1


def test_missing_path_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("train", str(missing))
    assert result.exit_code == 2
    out = lines(result.output)
    assert len(out) == 1, out
    assert "does not exist" in out[0] and "nope.yaml" in out[0]


def test_unwritable_output_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = invoke("synth", "ct", str(blocker / "out"), "--size", "tiny")
    assert result.exit_code == 2
    out = lines(result.output)
    assert len(out) == 1, out
    assert "cannot write to the output folder" in out[0]
    assert "Traceback" not in result.output


def test_debug_shows_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = invoke("--debug", "synth", "ct", str(blocker / "out"), "--size", "tiny")
    assert result.exit_code == 2
    assert "Traceback" in result.output
    assert "cannot write to the output folder" in result.output


def test_runtime_error_exit_code_is_1(tmp_path: Path) -> None:
    """A DataError raised inside a command maps to exit code 1 with one message."""
    from medseg.errors import DataError

    @app.command("_raise_data_error", hidden=True)
    def _raise() -> None:
        raise DataError("unreadable scan", case_id="C1", path="/x/y.dcm")

    try:
        result = invoke("_raise_data_error")
    finally:
        app.registered_commands = [
            c for c in app.registered_commands if c.name != "_raise_data_error"
        ]
    assert result.exit_code == 1
    assert lines(result.output) == ["Error: case C1: unreadable scan [/x/y.dcm]"]


def test_synth_ct_writes_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "ct"
    result = invoke(
        "--no-progress", "synth", "ct", str(out), "--size", "tiny", "--patients", "2", "--seed", "3"
    )
    assert result.exit_code == 0, result.output
    assert (out / "truth.json").is_file()
    assert "SYNCT0000" in result.output and "SYNCT0001" in result.output
    assert len(list((out / "labels").glob("*.nii.gz"))) == 2


def test_synth_oct_png_writes(tmp_path: Path) -> None:
    out = tmp_path / "oct"
    result = invoke(
        "--no-progress", "synth", "oct", str(out), "--size", "tiny", "-n", "1", "--format", "png"
    )
    assert result.exit_code == 0, result.output
    stacks = [p for p in (out / "images").iterdir() if p.is_dir()]
    assert stacks and all((p / "spacing.json").is_file() for p in stacks)


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    """-v/--debug/--no-progress work after the subcommand as before it (README: anywhere)."""
    import logging

    from medseg.cli import _console

    seen: list[_console.CLIState] = []

    @app.command("_state", hidden=True)
    def _state(ctx: typer.Context, name: str = typer.Option("x", "--name")) -> None:
        seen.append(ctx.obj)

    try:
        result = invoke("_state", "--name", "a", "--no-progress", "-v", "--debug")
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "_state"]
    assert result.exit_code == 0, result.output
    assert seen[0].progress is False and seen[0].debug is True
    assert logging.getLogger("medseg").level == logging.DEBUG
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = invoke("synth", "ct", str(blocker / "out"), "--size", "tiny", "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.output and "cannot write to the output folder" in result.output


def test_hoisting_leaves_option_values_and_passthrough_alone() -> None:
    from typer.main import get_command

    from medseg.cli import hoist_global_options

    root = get_command(app)
    assert hoist_global_options(root, ["report", "P", "-o", "-v", "-q"]) == [
        "-q", "report", "P", "-o", "-v",
    ]  # fmt: skip
    assert hoist_global_options(root, ["synth", "ct", "X", "-vv", "--", "--debug"]) == [
        "-vv", "synth", "ct", "X", "--", "--debug",
    ]  # fmt: skip
    assert hoist_global_options(root, ["--debug", "plan", "W"]) == ["--debug", "plan", "W"]


@pytest.mark.parametrize(
    ("args", "folds", "warned"),
    [
        ([], None, False),
        (["--fold", "0", "--fold", "2"], [0, 2], False),
        (["--folds", "1,3"], [1, 3], True),
    ],
)
def test_predict_fold_is_a_list_of_fold_indices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], folds: object, warned: bool
) -> None:
    """--fold (repeatable) picks models; --folds (a count in manifest build) is a warned alias."""
    from medseg.errors import ConfigError
    from medseg.inference import predictor

    seen: dict[str, object] = {}

    def fake_from_run(run_dir: Path, **options: object) -> None:
        seen.update(options)
        raise ConfigError("stop here")

    monkeypatch.setattr(predictor.Predictor, "from_run", staticmethod(fake_from_run))
    (tmp_path / "run").mkdir()
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    result = invoke("predict", str(tmp_path / "run"), str(tmp_path / "scan.nii.gz"),
                    "-o", str(tmp_path / "out"), *args)  # fmt: skip
    assert result.exit_code == 2 and "stop here" in result.output, result.output
    assert seen["folds"] == folds
    assert ("deprecated" in result.output) is warned


def test_predict_fold_and_folds_together_is_an_error(tmp_path: Path) -> None:
    from medseg.cli.predict import chosen_folds
    from medseg.errors import ConfigError

    with pytest.raises(ConfigError, match="not both"):
        chosen_folds([0], "1")
    with pytest.raises(ConfigError, match="comma-separated"):
        chosen_folds(None, "a,b")


def test_train_summary_prints_the_whole_checkpoint_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long run folder is printed in full on one line, however narrow the terminal."""
    import io

    from rich.console import Console

    from medseg.cli import _console
    from medseg.cli.train import print_checkpoints

    buffer = io.StringIO()
    monkeypatch.setattr(_console, "out", Console(file=buffer, width=40, soft_wrap=False))
    fold_dir = Path("/data/runs/a_rather_long_study_name/oct_fluid_unet2d_2024-05-01/fold_3")
    print_checkpoints(fold_dir)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        f"best checkpoint: {fold_dir / 'checkpoint_best.pt'}",
        f"last checkpoint: {fold_dir / 'checkpoint_last.pt'}",
    ]
