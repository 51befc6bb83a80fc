"""Benchmark: training quality and time of the shipped U-Net workflows on synthetic data.

For ``--task oct`` (``workflows/oct_fluid_unet2d.yaml``, 2D on B-scans) or ``--task ct``
(``workflows/ct_lesion_unet3d.yaml``, 3D patches) this runs, with the CLI, exactly what a user
would::

    medseg synth oct WORK/scans --size realistic --patients 8          # or: synth ct --size realistic
    medseg manifest build WORK/scans/images --labels WORK/scans/labels -o WORK/data.json --folds 4
    medseg train workflows/oct_fluid_unet2d.yaml --set manifest=WORK/data.json -o WORK/run
    medseg predict WORK/run WORK/data.json -o WORK/pred        (the validation fold, source grid)
    medseg evaluate WORK/pred --ref WORK/data.json -o WORK/eval

and prints the training minutes, the best validation Dice during training (preprocessed grid) and
the held-out Dice per class on the source grid. Usage::

    python benchmarks/train_quality.py --task oct [--work /tmp/medseg_quality_oct]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = {
    "oct": {
        "synth": ["oct", "--size", "realistic", "--patients", "8"],
        "folds": "4",
        "workflow": "oct_fluid_unet2d.yaml",
    },
    "ct": {
        "synth": ["ct", "--size", "realistic", "--patients", "10"],
        "folds": "5",
        "workflow": "ct_lesion_unet3d.yaml",
    },
}


def medseg(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "medseg", "-q", "--no-progress", *args], check=False, cwd=REPO
    )
    return time.perf_counter() - start


def held_out_manifest(data: Path, out: Path, fold: int) -> Path:
    manifest = json.loads(data.read_text())
    manifest["cases"] = [c for c in manifest["cases"] if c.get("fold") == fold]
    manifest["data_root"] = str((data.parent / manifest["data_root"]).resolve())
    out.write_text(json.dumps(manifest))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="oct")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--keep-data", action="store_true", help="reuse WORK/scans if present")
    args = parser.parse_args()
    task = TASKS[args.task]
    work = args.work or Path(f"/tmp/medseg_quality_{args.task}")
    if not args.keep_data and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "scans" / "truth.json").exists():
        medseg("synth", *task["synth"][:1], str(work / "scans"), *task["synth"][1:])
    data = work / "data.json"
    medseg(
        "manifest",
        "build",
        str(work / "scans" / "images"),
        "--labels",
        str(work / "scans" / "labels"),
        "-o",
        str(data),
        "--folds",
        task["folds"],
    )
    shutil.rmtree(work / "run", ignore_errors=True)
    train_s = medseg(
        "train",
        str(REPO / "workflows" / task["workflow"]),
        "--set",
        f"manifest={data}",
        "-o",
        str(work / "run"),
        "--fold",
        str(args.fold),
    )
    held = held_out_manifest(data, work / "held_out.json", args.fold)
    predict_s = medseg(
        "predict", str(work / "run"), str(held), "-o", str(work / "pred"), "--overwrite"
    )
    medseg("evaluate", str(work / "pred"), "--ref", str(held), "-o", str(work / "eval"))
    summary = json.loads(
        (work / "run" / f"fold_{args.fold}" / "validation" / "summary.json").read_text()
    )
    evaluation = json.loads((work / "eval" / "summary.json").read_text())
    print(f"task {args.task}: workflow {task['workflow']}, fold {args.fold}")
    print(
        f"training wall time {train_s / 60:.1f} min (incl. start-up, preprocessing, validation); epochs {summary['epochs_run']}, stopped: {summary['stopped']}"
    )
    print(
        f"best validation Dice during training (preprocessed grid): {summary['best_score']:.4f} at epoch {summary['best_epoch']}"
    )
    print(
        f"prediction of {len(json.loads(held.read_text())['cases'])} held-out cases: {predict_s:.1f} s"
    )
    print(
        "held-out cases on the source grid (medseg evaluate): mean Dice over cases, pooled lesions"
    )
    for entry in evaluation["classes"].values():
        m, lesions = entry["metrics"], entry.get("lesions", {})
        dice, hd95 = m["dice"], m["hd95_mm"]
        print(
            f"  {entry['name']:8s} Dice {dice['mean']:.4f} (median {dice['median']:.4f}, n={dice['n']})  "
            f"HD95 {hd95['mean'] if hd95['mean'] is not None else float('nan'):.3f} mm  "
            f"lesion F1 {lesions.get('f1', float('nan')):.3f} (TP {lesions.get('tp')}, FP {lesions.get('fp')}, FN {lesions.get('fn')})"
        )


if __name__ == "__main__":
    main()
