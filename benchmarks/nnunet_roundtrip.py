"""nnU-Net v2 reads a ``medseg manifest export`` as its own: integrity check, CT normalisation,
splits; and ``medseg manifest import`` reads the folds back.

Runs in a benchmark environment with ``nnunetv2`` from PyPI (never a medseg dependency)::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install torch==2.13.0      # the CPU build; torchvision is not needed
    /work/bench-venv/bin/pip install --no-deps nnunetv2 dynamic-network-architectures
    /work/bench-venv/bin/pip install acvl-utils batchgenerators batchgeneratorsv2 blosc2 einops \\
        graphviz imagecodecs requests yacs SimpleITK nibabel scikit-image pandas tqdm matplotlib \\
        seaborn tifffile scikit-learn
    /work/bench-venv/bin/python benchmarks/nnunet_roundtrip.py [--medseg .venv/bin/medseg]

The medseg side runs through its CLI only (``--medseg``, default ``.venv/bin/medseg`` of this
checkout): ``synth ct`` (a small DICOM cohort), ``manifest build`` with 3 patient-level folds,
``manifest export`` to ``$nnUNet_raw/Dataset501_MedsegCT`` with ``--preprocessed`` (or, with
``--raw-only``, without: then nnU-Net's planner must find the splits in the raw folder). nnU-Net:
``verify_dataset_integrity``, fingerprint, experiment planning (which copies the raw folder's
``splits_final.json`` and checks it against the preprocessed one), preprocessing of
``3d_fullres``, and its trainer's own ``do_split`` for every fold, compared with the manifest's
folds. Last, ``medseg manifest import`` reads the dataset back. Exit 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASET_ID, DATASET = 501, "Dataset501_MedsegCT"


def _medseg(exe: Path, *args: str) -> None:
    done = subprocess.run([str(exe), "--no-progress", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"medseg {' '.join(args[:2])} failed:\n{done.stdout}{done.stderr}")


def _medseg_side(exe: Path, work: Path, patients: int, raw_only: bool) -> dict[str, int]:
    """Synthesise, build with folds, export; returns the manifest's ``case_id -> fold``."""
    _medseg(exe, "synth", "ct", str(work / "scans"), "--patients", str(patients))
    manifest = work / "ct.json"
    _medseg(exe, "manifest", "build", str(work / "scans" / "images"), "-o", str(manifest),
            "--labels", str(work / "scans" / "labels"), "--folds", "3")  # fmt: skip
    export = ["manifest", "export", str(manifest), "-o", str(work / "raw" / DATASET)]
    _medseg(exe, *export, *([] if raw_only else ["--preprocessed", str(work / "preprocessed")]))
    cases = json.loads(manifest.read_text())["cases"]
    return {c["case_id"]: c["fold"] for c in cases if c["split"] == "train" and c["label"]}


def _nnunet_side(work: Path) -> tuple[list[str], list[tuple[list[str], list[str]]]]:
    """nnU-Net on the export: integrity, planning, preprocessing, the trainer's splits."""
    os.environ.update(
        nnUNet_raw=str(work / "raw"),
        nnUNet_preprocessed=str(work / "preprocessed"),
        nnUNet_results=str(work / "results"),
    )
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.run.run_training import get_trainer_from_args

    torch.set_num_threads(1)
    verify_dataset_integrity(str(work / "raw" / DATASET), num_processes=1)
    print("nnU-Net verify_dataset_integrity: passed")
    extract_fingerprint_dataset(DATASET_ID, num_processes=1, show_progress_bar=False)
    plans, _ = plan_experiment_dataset(DATASET_ID)
    schemes = plans["configurations"]["3d_fullres"]["normalization_schemes"]
    preprocess_dataset(DATASET_ID, configurations=("3d_fullres",), num_processes=(1,),
                       show_progress_bar=False)  # fmt: skip
    splits_file = work / "preprocessed" / DATASET / "splits_final.json"
    splits = []
    for fold in range(len(json.loads(splits_file.read_text()))):
        trainer = get_trainer_from_args(DATASET, "3d_fullres", fold, device=torch.device("cpu"))
        train, val = trainer.do_split()
        splits.append((sorted(train), sorted(val)))
    return schemes, splits


def _compare(folds: dict[str, int], splits: list[tuple[list[str], list[str]]]) -> list[str]:
    problems = []
    for k, (train, val) in enumerate(splits):
        want = sorted(c for c, f in folds.items() if f == k)
        if val != want or sorted(set(folds) - set(val)) != train:
            problems.append(f"fold {k}: nnU-Net validates {val}, trains {train}; manifest {want}")
    if len(splits) != len(set(folds.values())):
        problems.append(f"nnU-Net has {len(splits)} folds, the manifest {len(set(folds.values()))}")
    return problems


def _import_back(exe: Path, work: Path) -> dict[str, Any]:
    _medseg(exe, "manifest", "import", str(work / "raw" / DATASET), "-o", str(work / "back.json"),
            "--preprocessed", str(work / "preprocessed"))  # fmt: skip
    cases = json.loads((work / "back.json").read_text())["cases"]
    return {c["case_id"]: c["fold"] for c in cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medseg", type=Path, default=REPO / ".venv" / "bin" / "medseg")
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument(
        "--raw-only",
        action="store_true",
        help="export without --preprocessed: nnU-Net's planner must copy the raw splits file",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnunet_roundtrip_") as tmp:
        work = Path(tmp)
        os.environ.pop("nnUNet_preprocessed", None)  # the export writes only what it is told
        folds = _medseg_side(args.medseg, work, args.patients, args.raw_only)
        channel_names = json.loads((work / "raw" / DATASET / "dataset.json").read_text())
        schemes, splits = _nnunet_side(work)
        back = _import_back(args.medseg, work)
    problems = _compare(folds, splits)
    if schemes != ["CTNormalization"]:
        problems.append(f"nnU-Net normalises the CT channel with {schemes}, not CTNormalization")
    if back != folds:
        problems.append(f"medseg import read folds {back}, the export had {folds}")
    print(f"channel_names {channel_names['channel_names']} -> nnU-Net normalisation {schemes}")
    for k, (_, val) in enumerate(splits):
        print(f"fold {k}: nnU-Net trainer validates on {val}")
    print(f"medseg manifest import: folds {'equal' if back == folds else 'DIFFER'} ({back})")
    print(f"{len(splits)} folds, {len(folds)} training cases, {time.perf_counter() - start:.1f} s")
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("round trip ok" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
