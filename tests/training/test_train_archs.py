"""FCN and DeepLabv3+ through the whole pipeline: plan, train, checkpoint, predict (window + TTA).

Each network trains a few iterations on a synthetic set in 2D (OCT B-scans) and 3D (CT
patches); the trained in-memory network and the one rebuilt from its checkpoint alone
(``Predictor.from_run``) give the same probabilities and labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from medseg.config.run import plan_run
from medseg.config.schema import ResolvedWorkflow
from medseg.inference.prediction import prepare
from medseg.inference.predictor import Predictor
from medseg.inference.semantic import ensemble_probabilities
from medseg.io.read import read_volume
from medseg.models.registry import MODEL_BUILDERS
from medseg.training.loop import train

CASES = [
    ("fcn", "2d", []),
    ("fcn", "3d", ["train.patch_size=[32, 32, 12]"]),
    ("deeplabv3plus", "2d", []),
    ("deeplabv3plus", "3d", ["train.patch_size=[32, 32, 12]"]),
]


class _Recorder:
    """Registry builder that keeps every network the training loop builds and its initial weights."""

    def __init__(self, builder: object) -> None:
        self.builder = builder
        self.models: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []

    def __call__(self, resolved: ResolvedWorkflow) -> nn.Module:
        model: nn.Module = self.builder(resolved)  # type: ignore[operator]
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.models.append((model, initial))
        return model


@pytest.mark.parametrize(("arch", "dims", "extra"), CASES, ids=[f"{a}-{d}" for a, d, _ in CASES])
def test_trains_and_checkpoint_round_trip_predicts_the_same(
    arch: str,
    dims: str,
    extra: list[str],
    tmp_path: Path,
    smoke_workflow: Path,
    oct_manifest: Path,
    ct_manifest: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_torch_thread: None,
) -> None:
    recorder = _Recorder(MODEL_BUILDERS[arch])
    monkeypatch.setitem(MODEL_BUILDERS, arch, recorder)
    manifest = oct_manifest if dims == "2d" else ct_manifest
    planned = plan_run(
        smoke_workflow,
        overrides=[
            f"manifest={manifest}",
            f"model.name={arch}",
            f"task.dims={dims}",
            "model.base_filters=4",
            "model.max_filters=16",
            "train.epochs=1",
            "train.iterations_per_epoch=3",
            *extra,
        ],
        run_dir=tmp_path / "run",
    )
    resolved = planned.resolved
    assert resolved.model.name == arch and not resolved.model.deep_supervision
    result = train(resolved, planned.manifest, planned.run_dir)
    assert result.epochs_run == 1
    rows = [json.loads(x) for x in (result.fold_dir / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(rows[0]["train_loss"]) and "val_dice" in rows[0]

    assert recorder.models  # the preflight's copies first, then the run's network
    trained, initial = recorder.models[-1]
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, initial[k])]
    assert any(k.endswith("weight") for k in changed)  # the optimiser moved the weights

    monkeypatch.setitem(MODEL_BUILDERS, arch, recorder.builder)
    loaded = Predictor.from_run(planned.run_dir, checkpoint="last", device="cpu")
    live = Predictor(resolved, [trained.eval()], device=torch.device("cpu"), checkpoints=[])
    case = planned.manifest.cases[0]
    volume = read_volume(case.images[resolved.plan.channels[0]], root=planned.manifest.root)
    image = prepare(resolved, volume).image(loaded.device)
    torch.testing.assert_close(
        ensemble_probabilities(loaded.ensemble, image, tta=True),
        ensemble_probabilities(live.ensemble, image, tta=True),
        rtol=0,
        atol=1e-6,
    )
    a, b = loaded.predict(volume, tta=True), live.predict(volume, tta=True)
    assert a.labels.shape == volume.shape and (a.labels.array == b.labels.array).all()
