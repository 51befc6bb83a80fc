"""Mask R-CNN lesion detection on synthetic CT lesions (3D) and OCT fluid pockets (2D).

For each task: synthesise a training cohort (seed 0) and a held-out cohort (seed 1: other
anatomy, never seen in training or checkpoint selection), build their manifests (training:
``--folds 4``, fold 0 validates and selects the checkpoint; held-out: ``--folds 1``), train the
shipped workflow, predict the held-out cases and evaluate them at lesion IoU 0.3. It prints the
lesion detection F1 (per class and pooled over the lesion classes), sensitivity at fixed false
positives per case, the FROC score and the training minutes, and writes them to
``WORK/maskrcnn_quality.json``. The acceptance bar is a lesion F1 of at least 0.80.

The commands, for ``--task ct`` (OCT: ``synth oct ... --size realistic``, 16 + 10 patients,
``workflows/oct_fluid_maskrcnn2d.yaml``)::

    medseg synth ct WORK/ct_train --size small --patients 24 --format nifti --seed 0
    medseg synth ct WORK/ct_test --size small --patients 12 --format nifti --seed 1
    medseg manifest build WORK/ct_train/images --labels WORK/ct_train/labels --folds 4 \\
        -o WORK/ct_train.json
    medseg manifest build WORK/ct_test/images --labels WORK/ct_test/labels --folds 1 \\
        -o WORK/ct_test.json
    medseg train workflows/ct_lesion_maskrcnn3d.yaml -o WORK/runs/ct \\
        --set manifest=WORK/ct_train.json
    medseg predict WORK/runs/ct WORK/ct_test.json -o WORK/pred_ct
    medseg evaluate WORK/pred_ct --ref WORK/ct_test.json -o WORK/eval_ct --match-iou 0.3

Usage, from the repository root (on a shared CPU: lowest priority; one torch thread, since
OpenMP threads competing with other processes for the cores slow training down many times)::

    nice -n 19 python benchmarks/maskrcnn_quality.py [--task ct|oct|both] [--work DIR]

Steps whose outputs exist in ``WORK`` are skipped (``--fresh`` redoes them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TASKS: dict[str, dict[str, Any]] = {
    "ct": {
        "kind": "ct",
        "size": "small",
        "patients": (24, 12),
        "workflow": REPO / "workflows" / "ct_lesion_maskrcnn3d.yaml",
    },
    "oct": {
        "kind": "oct",
        "size": "realistic",
        "patients": (16, 10),
        "workflow": REPO / "workflows" / "oct_fluid_maskrcnn2d.yaml",
    },
}


def _medseg(*args: object, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "medseg", "--no-progress", *map(str, args)]
    print("$", " ".join(command[2:]), flush=True)
    done = subprocess.run(command, env=env, cwd=REPO, check=False)
    if done.returncode not in (0, 1):  # 1: some case failed/skipped, reported in the outputs
        raise SystemExit(f"command failed with exit code {done.returncode}")


def _data(task: dict[str, Any], work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    manifests = []
    for part, patients, seed, folds in (
        ("train", task["patients"][0], 0, 4),
        ("test", task["patients"][1], 1, 1),
    ):
        folder, manifest = work / f"{task['kind']}_{part}", work / f"{task['kind']}_{part}.json"
        if not (folder / "truth.json").is_file():
            _medseg("synth", task["kind"], folder, "--size", task["size"], "--patients", patients,
                    "--format", "nifti", "--seed", seed, env=env)  # fmt: skip
        if not manifest.is_file():
            _medseg("manifest", "build", folder / "images", "--labels", folder / "labels",
                    "--folds", folds, "-o", manifest, env=env)  # fmt: skip
        manifests.append(manifest)
    return manifests[0], manifests[1]


def _lesion_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Per lesion class and pooled: TP/FP/FN, F1, sensitivity, precision, FROC."""
    rows: dict[str, Any] = {}
    pooled = {"tp": 0, "fp": 0, "fn": 0}
    for value in summary["lesion_labels"]:
        entry = summary["classes"][str(value)]
        lesions = entry["lesions"]
        froc = lesions.get("froc") or {}
        rows[entry["name"]] = {
            **{
                k: lesions[k] for k in ("n_ref", "tp", "fp", "fn", "f1", "sensitivity", "precision")
            },
            "froc_score": froc.get("score"),
            "sensitivity_at_fp": froc.get("sensitivity_at_fp"),
        }
        for key in pooled:
            pooled[key] += int(lesions[key])
    denominator = 2 * pooled["tp"] + pooled["fp"] + pooled["fn"]
    rows["pooled"] = {**pooled, "f1": 2 * pooled["tp"] / denominator if denominator else None}
    return rows


def run_task(name: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Data, training, prediction and evaluation of one task; returns its figures."""
    task = TASKS[name]
    train_manifest, test_manifest = _data(task, work, env)
    run, pred, evaluation = work / "runs" / name, work / f"pred_{name}", work / f"eval_{name}"
    started = time.monotonic()
    if not (run / "fold_0" / "validation" / "summary.json").is_file():
        _medseg("train", task["workflow"], "-o", run, "--set", f"manifest={train_manifest}",
                env=env)  # fmt: skip
    train_wall = time.monotonic() - started
    _medseg("predict", run, test_manifest, "-o", pred, env=env)
    _medseg(
        "evaluate", pred, "--ref", test_manifest, "-o", evaluation, "--match-iou", "0.3", env=env
    )
    fold = json.loads((run / "fold_0" / "validation" / "summary.json").read_text())
    summary = json.loads((evaluation / "summary.json").read_text())
    return {
        "task": name,
        "workflow": str(task["workflow"].relative_to(REPO)),
        "train_minutes": round(fold["train_seconds"] / 60, 1),
        "train_wall_minutes": round(train_wall / 60, 1) if train_wall > 60 else None,
        "epochs_run": fold["epochs_run"],
        "best_epoch": fold["best_epoch"],
        "stopped": fold["stopped"],
        "test_cases": summary["cases"]["evaluated"],
        "lesions": _lesion_figures(summary),
    }


def _print(result: dict[str, Any]) -> None:
    print(f"\n== {result['task']}: {result['workflow']}, trained {result['train_minutes']} min "
          f"({result['epochs_run']} epochs, best {result['best_epoch']}; {result['stopped']}), "
          f"{result['test_cases']} held-out cases")  # fmt: skip
    for name, row in result["lesions"].items():
        f1 = "n/a" if row["f1"] is None else f"{row['f1']:.3f}"
        line = f"  {name:8s} F1 {f1}  TP {row['tp']} FP {row['fp']} FN {row['fn']}"
        if name != "pooled":
            at_fp = row["sensitivity_at_fp"] or {}
            line += f"  FROC {row['froc_score']}  sens@FP/case " + " ".join(
                f"{rate}:{value:.2f}" for rate, value in at_fp.items()
            )
        print(line)
    verdict = "PASS" if (result["lesions"]["pooled"]["f1"] or 0) >= 0.8 else "FAIL"
    print(f"  acceptance (pooled lesion F1 >= 0.80 at IoU 0.3): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("ct", "oct", "both"), default="both")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "maskrcnn_quality")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--fresh", action="store_true", help="delete WORK first")
    args = parser.parse_args()
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = [
        run_task(name, args.work, env)
        for name in (["ct", "oct"] if args.task == "both" else [args.task])
    ]
    for result in results:
        _print(result)
    out = args.work / "maskrcnn_quality.json"
    out.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))
    print(f"\nfigures: {out}")


if __name__ == "__main__":
    main()
