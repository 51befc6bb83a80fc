"""Training: loss goes down, resume is exact, checkpoints are safe, DDP writes once."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medseg.config.run import plan_run
from medseg.errors import CheckpointError, ConfigError
from medseg.training.checkpoint import BEST, LAST, load_checkpoint
from medseg.training.loop import EpochStats, train


def _plan(workflow: Path, manifest: Path, run_dir: Path, *extra: str):
    return plan_run(workflow, overrides=[f"manifest={manifest}", *extra], run_dir=run_dir)


def _metrics(run_dir: Path) -> list[dict]:
    return [
        json.loads(line) for line in (run_dir / "fold_0" / "metrics.jsonl").read_text().splitlines()
    ]


def test_training_lowers_the_loss(tmp_path: Path, smoke_workflow: Path, oct_manifest: Path) -> None:
    planned = _plan(
        smoke_workflow,
        oct_manifest,
        tmp_path / "run",
        "train.epochs=4",
        "train.iterations_per_epoch=6",
        "train.val_interval=4",
    )
    result = train(planned.resolved, planned.manifest, planned.run_dir)
    rows = _metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert "val_dice" in rows[-1] and set(rows[-1]["val_dice"]) == {"IRF", "SRF"}
    assert result.epochs_run == 4 and (result.fold_dir / BEST).is_file()
    summary = json.loads((result.fold_dir / "validation" / "summary.json").read_text())
    assert summary["best_epoch"] == 4 and summary["stopped"] == "epoch budget reached"


def test_time_budget_stop_validates_the_last_epoch(
    tmp_path: Path, smoke_workflow: Path, oct_manifest: Path
) -> None:
    planned = _plan(
        smoke_workflow,
        oct_manifest,
        tmp_path / "run",
        "train.epochs=5",
        "train.iterations_per_epoch=2",
        "train.val_interval=5",
        "train.max_minutes=0.0001",  # out of time after the first epoch
    )
    result = train(planned.resolved, planned.manifest, planned.run_dir)
    rows = _metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1] and "val_dice" in rows[0]
    assert result.best_epoch == 1 and result.best_score >= 0.0 and result.best_metric == "mean_dice"
    assert (result.fold_dir / BEST).is_file()
    summary = json.loads((result.fold_dir / "validation" / "summary.json").read_text())
    assert summary["best_epoch"] == 1 and summary["stopped"].startswith("time budget")


def test_resume_continues_exactly(tmp_path: Path, smoke_workflow: Path, oct_manifest: Path) -> None:
    full = _plan(smoke_workflow, oct_manifest, tmp_path / "full")
    train(full.resolved, full.manifest, full.run_dir)

    cut = _plan(smoke_workflow, oct_manifest, tmp_path / "cut")

    def kill_after_first_epoch(stats: EpochStats) -> None:
        if stats.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cut.resolved, cut.manifest, cut.run_dir, on_epoch_end=kill_after_first_epoch)
    first = load_checkpoint(tmp_path / "cut" / "fold_0" / LAST)
    assert first["state"]["epoch"] == 1
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(cut.resolved, cut.manifest, cut.run_dir)
    started: list[int] = []
    train(
        cut.resolved,
        cut.manifest,
        cut.run_dir,
        resume=True,
        on_epoch_end=lambda s: started.append(s.epoch),
    )
    assert started == [2]
    assert [r["epoch"] for r in _metrics(tmp_path / "cut")] == [1, 2]
    a = load_checkpoint(tmp_path / "full" / "fold_0" / LAST)
    b = load_checkpoint(tmp_path / "cut" / "fold_0" / LAST)
    for key, value in a["model"].items():  # same weights: same optimizer, scheduler and RNG state
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6)
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert b["scheduler"]["last_epoch"] == 2


def test_checkpoints_load_weights_only(
    tmp_path: Path, smoke_workflow: Path, oct_manifest: Path
) -> None:
    planned = _plan(smoke_workflow, oct_manifest, tmp_path / "run", "train.epochs=1")
    train(planned.resolved, planned.manifest, planned.run_dir)
    raw = torch.load(tmp_path / "run" / "fold_0" / BEST, weights_only=True)
    assert raw["labels"] == {"0": "background", "1": "IRF", "2": "SRF"}
    assert raw["resolved_workflow"]["name"] == "smoke" and raw["versions"]["medseg"]
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(planned.resolved, planned.manifest, tmp_path / "other", resume=True)


class Payload:
    def __reduce__(self):  # what a malicious checkpoint would do when unpickled
        return (os.system, ("echo pwned",))


def test_unsafe_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fp:
        pickle.dump({"schema_version": 1, "model": Payload()}, fp)
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(path)


def test_3d_training_on_ct(tmp_path: Path, smoke_workflow: Path, ct_manifest: Path) -> None:
    planned = _plan(
        smoke_workflow,
        ct_manifest,
        tmp_path / "run",
        "task.dims=3d",
        "train.patch_size=[32, 32, 16]",
        "train.epochs=1",
        "train.iterations_per_epoch=2",
    )
    assert (
        planned.resolved.spatial_dims == 3 and planned.resolved.preprocess.intensity.scheme == "ct"
    )
    result = train(planned.resolved, planned.manifest, planned.run_dir)
    assert result.epochs_run == 1 and set(_metrics(tmp_path / "run")[0]["val_dice"]) == {
        "organ",
        "lesion",
    }


def test_ddp_two_processes_gloo_write_one_set(
    tmp_path: Path, smoke_workflow: Path, oct_manifest: Path
) -> None:
    run = tmp_path / "ddp"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "medseg",
        "--no-progress",
        "train",
        str(smoke_workflow),
        "-o",
        str(run),
        "--device",
        "cpu",
        "--set",
        f"manifest={oct_manifest}",
        "--set",
        "train.iterations_per_epoch=2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert files == [
        "fingerprint.json",
        "fold_0/checkpoint_best.pt",
        "fold_0/checkpoint_last.pt",
        "fold_0/metrics.jsonl",
        "fold_0/validation/summary.json",
        "medseg.log",
        "resolved_workflow.yaml",
    ]
    rows = [json.loads(x) for x in (run / "fold_0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # written once, by rank 0
    assert (
        done.stderr.count("trained smoke fold 0") + done.stdout.count("trained smoke fold 0") == 1
    )
