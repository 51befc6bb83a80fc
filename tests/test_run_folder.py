"""The run folder: checkpoint loading (weights only, old keys upgraded), fold discovery, ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medseg.errors import CheckpointError, ConfigError
from medseg.run_folder import (
    BEST,
    CHECKPOINT_SCHEMA_VERSION,
    LAST,
    DistInfo,
    checkpoint_path,
    dist_info,
    fold_dirs,
    load_checkpoint,
)
from medseg.training.state import LoopState


def _save(path: Path, **payload: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"schema_version": CHECKPOINT_SCHEMA_VERSION, **payload}, path)
    return path


@pytest.mark.parametrize(("kind", "metric"), [("semantic", "mean_dice"), ("instance", "lesion_f1")])
def test_old_checkpoint_best_dice_loads_as_best_score(
    tmp_path: Path, kind: str, metric: str
) -> None:
    """Checkpoints written before the rename kept the selection score under ``best_dice``."""
    old_state = {
        "epoch": 3,
        "best_dice": 0.75,
        "best_epoch": 2,
        "bad_validations": 1,
        "seconds": 9.0,
    }
    path = _save(tmp_path / LAST, state=old_state, resolved_workflow={"task": {"kind": kind}})
    state = load_checkpoint(path)["state"]
    assert state["best_score"] == 0.75 and state["best_metric"] == metric
    assert "best_dice" not in state
    restored = LoopState(**state)  # what --resume does with it
    assert restored.best_score == 0.75 and restored.best_metric == metric and restored.epoch == 3


def test_new_checkpoint_keys_are_kept(tmp_path: Path) -> None:
    state = {"epoch": 1, "best_score": 0.5, "best_metric": "lesion_f1"}
    path = _save(tmp_path / LAST, state=state, resolved_workflow={"task": {"kind": "semantic"}})
    assert load_checkpoint(path)["state"] == state


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a medseg checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """weights_only: a checkpoint holding an arbitrary Python object is not unpickled."""
    torch.save({"schema_version": 1, "evil": Path("x")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_fold_dirs_and_checkpoint_choice(tmp_path: Path) -> None:
    for k in (10, 2, 0):
        (tmp_path / f"fold_{k}").mkdir()
    _save(tmp_path / "fold_0" / LAST)
    _save(tmp_path / "fold_2" / BEST)
    _save(tmp_path / "fold_2" / LAST)
    assert [d.name for d in fold_dirs(tmp_path)] == ["fold_0", "fold_2", "fold_10"]
    assert [d.name for d in fold_dirs(tmp_path, [2, 7])] == ["fold_2"]
    assert checkpoint_path(tmp_path / "fold_2").name == BEST
    assert checkpoint_path(tmp_path / "fold_2", "last").name == LAST
    assert checkpoint_path(tmp_path / "fold_0").name == LAST  # best missing: the last one
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        checkpoint_path(tmp_path / "fold_10")


def test_dist_info_from_the_torchrun_environment() -> None:
    assert dist_info({}) == DistInfo(0, 1, 0)
    info = dist_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert info == DistInfo(3, 4, 1) and info.enabled and not info.is_main
    assert info.shard(list("abcdefghi")) == ["d", "h"]
    assert DistInfo().shard(["a", "b"]) == ["a", "b"]
    with pytest.raises(ConfigError, match="RANK='x' is not an integer"):
        dist_info({"RANK": "x"})
    with pytest.raises(ConfigError, match="0 <= RANK < WORLD_SIZE"):
        dist_info({"RANK": "2", "WORLD_SIZE": "2"})
