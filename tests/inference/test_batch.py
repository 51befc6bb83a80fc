"""Batch prediction survives bad cases, resumes without recomputing, never leaves partial files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DynUNet
from typer.testing import CliRunner

from medseg.cli import app
from medseg.inference import batch
from medseg.inference.batch import BatchOptions, predict_cases
from medseg.inference.cases import cases_from_inputs
from medseg.io.atomic import PARTIAL_TAG
from tests.helpers import validate_prediction_folder


def _inputs(tmp_path: Path, synth_dir: Callable[..., Path]) -> Path:
    root = synth_dir("oct", "dicom", patients=3)
    scans = tmp_path / "scans"
    shutil.copytree(root / "images", scans)
    return scans


def test_corrupt_case_is_reported_and_others_finish(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    scans = _inputs(tmp_path, synth_dir)
    victim = sorted(scans.rglob("*.dcm"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated: pixel data cut off
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["--no-progress", "predict", str(trained_run), str(scans), "-o", str(out)]
    )
    assert result.exit_code == 1, result.output
    validate_prediction_folder(out)
    report = json.loads((out / "run_report.json").read_text())
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    assert (
        len(failed) == 1 and "truncated" in failed[0]["error"] and victim.name in failed[0]["error"]
    )
    done = [c for c in report["cases"] if c["status"] == "done"]
    assert len(done) == len(report["cases"]) - 1 >= 3
    for case in done:
        assert (out / f"{case['case_id']}.nii.gz").is_file() and (
            out / f"{case['case_id']}.png"
        ).is_file()
    assert report["checkpoints"][0]["sha256"] and report["labels"]["1"] == "IRF"
    assert "failed" in result.output


def test_interrupted_run_resumes_without_recomputing(
    tmp_path: Path,
    synth_dir: Callable[..., Path],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medseg.inference.predictor import Predictor

    scans = _inputs(tmp_path, synth_dir)
    cases = cases_from_inputs([scans])
    predictor = Predictor.from_run(trained_run)
    out = tmp_path / "out"
    calls: list[str] = []
    interrupted: list[bool] = []
    original = batch.predict_case

    def counting(pred, case, folder, options):  # type: ignore[no-untyped-def]
        calls.append(case.case_id)
        if len(calls) == 3 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # the user presses Ctrl-C during the third case
        return original(pred, case, folder, options)

    monkeypatch.setattr(batch, "predict_case", counting)
    with pytest.raises(KeyboardInterrupt):
        list(predict_cases(predictor, cases, out, BatchOptions()))
    first_two = calls[:2]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in first_two)
    assert not list(out.glob(f"*{PARTIAL_TAG}*"))
    calls.clear()
    results = list(predict_cases(predictor, cases, out, BatchOptions()))
    assert sorted(calls) == sorted(c.case_id for c in cases if c.case_id not in first_two)
    assert {r.case_id: r.status for r in results if r.case_id in first_two} == dict.fromkeys(
        first_two, "reused"
    )
    calls.clear()
    list(predict_cases(predictor, cases, out, BatchOptions(overwrite=True)))
    assert len(calls) == len(cases)


def test_crash_while_writing_leaves_no_half_file(
    tmp_path: Path,
    synth_dir: Callable[..., Path],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nibabel as nib

    from medseg.inference.predictor import Predictor

    scans = _inputs(tmp_path, synth_dir)
    case = cases_from_inputs([scans])[0]
    out = tmp_path / "out"
    out.mkdir()

    def dying_save(img, filename):  # type: ignore[no-untyped-def]
        Path(filename).write_bytes(b"half a nifti")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", dying_save)
    result = batch.predict_case(Predictor.from_run(trained_run), case, out, BatchOptions())
    assert result.status == "failed" and "disk full" in result.error
    assert list(out.iterdir()) == []


def test_wrong_model_for_the_scan_is_a_clear_failure(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    ct = synth_dir("ct", "dicom")
    result = CliRunner().invoke(
        app,
        [
            "--no-progress",
            "predict",
            str(trained_run),
            str(ct / "images"),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    report = json.loads((tmp_path / "o" / "run_report.json").read_text())
    assert all(
        "modality is CT; this model was trained on OPT" in c["error"] for c in report["cases"]
    )


def test_unusable_model_fails_the_batch_before_any_case(
    tmp_path: Path,
    synth_dir: Callable[..., Path],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model that cannot run (here: every forward raises, as an out-of-memory device would)
    ends `predict` at once with one message, writing nothing; a usable one passes the check."""
    from medseg.errors import CheckpointError
    from medseg.inference.predictor import Predictor

    Predictor.from_run(trained_run).self_check()  # a usable model passes
    scans = synth_dir("oct", "dicom", patients=3) / "images"

    def broken(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory on the device")

    monkeypatch.setattr(DynUNet, "forward", broken)
    with pytest.raises(CheckpointError, match="blank scan.*out of memory"):
        Predictor.from_run(trained_run).self_check()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["--no-progress", "predict", str(trained_run), str(scans), "-o", str(out)]
    )
    assert result.exit_code == 1
    assert "cannot segment a blank scan" in " ".join(result.output.split())
    assert not list(out.glob("*.nii.gz")) and not (out / "run_report.json").exists()


@pytest.mark.slow
def test_a_case_is_done_only_when_all_its_outputs_are(
    tmp_path: Path,
    synth_dir: Callable[..., Path],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SEG writer failure leaves a ``partial`` case (label map kept, SEG named missing, no SEG
    file left from before); a label-map failure leaves nothing; a rerun redoes both."""
    from medseg.errors import DataError
    from medseg.inference import case_outputs

    scans = tmp_path / "scans"
    shutil.copytree(sorted((synth_dir("oct", "dicom", patients=3) / "images").iterdir())[0], scans)
    out = tmp_path / "out"
    args = ["--no-progress", "predict", str(trained_run), str(scans), "-o", str(out), "--dicom-seg"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = json.loads((out / "run_report.json").read_text())["cases"]
    seg_files = sorted(out.glob("*.seg.dcm"))
    assert len(seg_files) == len(first) >= 1

    def broken_seg(*args: object, **kwargs: object) -> None:
        raise DataError("the source has an attribute the SEG writer cannot take")

    monkeypatch.setattr(case_outputs, "write_dicom_seg", broken_seg)
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 1 and "partial" in result.output
    report = json.loads((out / "run_report.json").read_text())
    assert report["summary"]["partial"] == len(first) and report["summary"]["done"] == 0
    for row in report["cases"]:
        assert row["status"] == "partial" and row["missing"] == ["dicom_seg"]
        assert "dicom_seg not written: the source has an attribute" in row["error"]
        assert set(row["outputs"]) == {"labels", "preview"}
        assert all((out / name).is_file() for name in row["outputs"].values())
    assert not list(out.glob("*.seg.dcm")) and not list(out.glob(f"*{PARTIAL_TAG}*"))

    monkeypatch.undo()
    calls: list[str] = []
    original = batch.predict_case
    monkeypatch.setattr(
        batch, "predict_case", lambda p, c, f, o: calls.append(c.case_id) or original(p, c, f, o)
    )
    assert CliRunner().invoke(app, args).exit_code == 0  # no --overwrite: partial cases redone
    assert sorted(calls) == sorted(row["case_id"] for row in first)
    assert sorted(out.glob("*.seg.dcm")) == seg_files

    def broken_nifti(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(case_outputs, "write_nifti", broken_nifti)
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 1
    rows = json.loads((out / "run_report.json").read_text())["cases"]
    assert all(r["status"] == "failed" and r["outputs"] == {} for r in rows)
    assert sorted(p.name for p in out.iterdir()) == ["run_report.json"]  # nothing looks complete


@pytest.mark.slow
def test_torchrun_ranks_share_the_cases_and_rank0_merges_the_report(
    tmp_path: Path, synth_dir: Callable[..., Path], trained_run: Path
) -> None:
    """Two processes with torchrun's environment: each predicts every other case, rank 0 merges."""
    import os
    import socket
    import subprocess
    import sys

    scans = _inputs(tmp_path, synth_dir)
    out = tmp_path / "out"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "medseg", "--no-progress", "predict", str(trained_run)]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
        procs.append(
            subprocess.Popen(
                [*command, str(scans), "-o", str(out), "--device", "cpu"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    report = json.loads((out / "run_report.json").read_text())
    order = [c.case_id for c in cases_from_inputs([scans])]
    assert [c["case_id"] for c in report["cases"]] == order  # input order, both ranks' cases
    assert report["world_size"] == 2 and report["summary"]["done"] == len(order)
    assert not list(out.glob(".run_report.rank*"))  # per-rank reports merged away
    assert all((out / f"{case_id}.nii.gz").is_file() for case_id in order)
    assert "predictions" in outputs[0] and "predictions" not in outputs[1]  # only rank 0 talks
