"""Preflight and validation failures: a long training run fails within a minute on a problem that
would only show at its first validation, and an error during validation loses no trained epoch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medseg.cli import app
from medseg.training import validation
from medseg.training.checkpoint import LAST, load_checkpoint

runner = CliRunner()


def _train(workflow: Path, manifest: Path, run: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "--no-progress",
            "train",
            str(workflow),
            "-o",
            str(run),
            "--set",
            f"manifest={manifest}",
            *extra,
        ],
    )


def _break_scoring(monkeypatch: pytest.MonkeyPatch, *, after: int = 0) -> list[int]:
    """Make validation scoring raise from its ``after + 1``-th case on; returns the call count."""
    calls = [0]
    real = validation.evaluate_arrays

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] > after:
            raise ValueError("injected scoring failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(validation, "evaluate_arrays", broken)
    return calls


def test_preflight_catches_a_validation_failure_within_a_minute(
    tmp_path: Path,
    smoke_workflow: Path,
    oct_manifest: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_torch_thread: None,
) -> None:
    _break_scoring(monkeypatch)
    run = tmp_path / "run"
    start = time.monotonic()
    # a budget of 200 x 500 iterations: without preflight the failure would come after epoch 1
    result = _train(
        smoke_workflow,
        oct_manifest,
        run,
        "--set",
        "train.epochs=200",
        "--set",
        "train.iterations_per_epoch=500",
    )
    seconds = time.monotonic() - start
    assert result.exit_code == 1, result.output
    assert seconds < 60, seconds
    text = " ".join(result.output.split())
    assert "preflight validation failed" in text and "injected scoring failure" in text
    case = json.loads(oct_manifest.read_text())["cases"]
    assert any(f"case {c['case_id']}" in text for c in case)  # names the case
    assert not (run / "fold_0" / "metrics.jsonl").exists()  # nothing was trained
    assert not (run / "fold_0" / LAST).exists()
    assert "Traceback" not in result.output


def test_preflight_passes_and_leaves_training_unchanged(
    tmp_path: Path, smoke_workflow: Path, oct_manifest: Path, one_torch_thread: None
) -> None:
    """Same seed with and without preflight: identical weights (the RNG is restored)."""
    states = []
    for flag in ("--preflight", "--no-preflight"):
        run = tmp_path / flag.strip("-")
        result = _train(smoke_workflow, oct_manifest, run, flag, "--set", "train.epochs=1")
        assert result.exit_code == 0, result.output
        states.append(load_checkpoint(run / "fold_0" / LAST)["model"])
    for key, value in states[0].items():
        torch.testing.assert_close(value, states[1][key], msg=key)


def test_validation_error_keeps_the_epoch_and_resume_goes_on(
    tmp_path: Path,
    smoke_workflow: Path,
    oct_manifest: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_torch_thread: None,
) -> None:
    run = tmp_path / "run"
    settings = ["--set", "train.epochs=3", "--set", "train.val_interval=1", "--no-preflight"]
    n_val = len([c for c in json.loads(oct_manifest.read_text())["cases"] if c["fold"] == 0])
    _break_scoring(monkeypatch, after=n_val)  # epoch 1 validates; epoch 2's validation breaks
    result = _train(smoke_workflow, oct_manifest, run, *settings)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "validation after epoch 2 failed" in text and "--resume" in text
    saved = load_checkpoint(run / "fold_0" / LAST)
    assert saved["state"]["epoch"] == 2 and saved["state"]["pending"] is not None
    rows = [json.loads(r) for r in (run / "fold_0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]

    monkeypatch.undo()
    result = _train(smoke_workflow, oct_manifest, run, *settings, "--resume")
    assert result.exit_code == 0, result.output
    rows = [json.loads(r) for r in (run / "fold_0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all("val_dice" in r for r in rows)  # epoch 2 was validated on resume
    assert rows[1]["train_loss"] > 0  # its training row survived the failure
    final = load_checkpoint(run / "fold_0" / LAST)
    assert final["state"]["epoch"] == 3 and final["state"]["pending"] is None
