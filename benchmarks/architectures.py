"""Benchmark: U-Net (DynUNet), SegResNet, FCN and DeepLabv3+ on one data set, same CPU budget.

Works on any medseg manifest (2D or 3D). For every architecture it runs what a user would::

    medseg train WORKFLOW --set model.name=ARCH --set train.max_minutes=M -o WORK/ARCH/run --fold K
    medseg predict WORK/ARCH/run WORK/held_out.json -o WORK/ARCH/pred
    medseg evaluate WORK/ARCH/pred --ref WORK/held_out.json -o WORK/ARCH/eval

Every network gets the same workflow and overrides, and the same wall-clock training budget
(``train.max_minutes``; the epoch that reaches it is validated, then training stops), each planned
by ``medseg plan`` for itself (patch divisibility, stages). Held-out cases: the manifest's
labelled ``test`` split if it has one, else validation fold ``K`` (which also picked the best
checkpoint; use ``--checkpoint last`` to avoid that selection). It prints, per architecture and
class, Dice and HD95 (mm) on the source grid (means over cases; a case without the class scores
Dice 1 when the prediction is empty too, and HD95 is undefined when one side is empty, so the
count of defined cases is shown) and lesion F1 (pooled over cases), the parameter
count, the training time and epochs, prediction seconds per case, and ratios to the U-Net
(``dynunet``, the reference measured in the same run). Numbers also go to
``WORK/architectures.json``. On a CPU shared with other jobs pass ``--threads 1``: two OpenMP
threads competing for two busy cores were ten times slower per iteration here. Usage::

    python benchmarks/architectures.py --manifest data.json --dims 3d --minutes 20
    python benchmarks/architectures.py --manifest data.json --workflow wf.yaml --set train.batch_size=4
    python benchmarks/architectures.py --synthetic ct --minutes 2     # demo on `medseg synth ct`
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
ARCHS = ("dynunet", "segresnet", "fcn", "deeplabv3plus")
SYNTHETIC_DIMS = {"oct": "2d", "ct": "3d"}


def medseg(*args: str, threads: int | None) -> tuple[int, float]:
    """Run the medseg CLI quietly; returns (exit code, seconds)."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "medseg", "-q", "--no-progress", *args], cwd=REPO, env=env
    )
    return done.returncode, time.perf_counter() - start


def synthetic_manifest(args: argparse.Namespace) -> tuple[Path, str]:
    """``medseg synth KIND`` + ``manifest build`` (3 folds) in WORK; returns (manifest, dims)."""
    kind, work, threads = args.synthetic, args.work, args.threads
    scans = work / "scans"
    if not (scans / "truth.json").exists():
        options = ["--size", args.size, "--patients", str(args.patients)]
        medseg("synth", kind, str(scans), *options, threads=threads)
    data = work / "data.json"
    labels = ["--labels", str(scans / "labels")]
    medseg(
        "manifest",
        "build",
        str(scans / "images"),
        *labels,
        "-o",
        str(data),
        "--folds",
        "3",
        threads=threads,
    )
    return data, SYNTHETIC_DIMS[kind]


def held_out(manifest_file: Path, out: Path, fold: int) -> tuple[Path, str]:
    """Manifest of the held-out cases (labelled test split, else fold ``fold``) with an absolute root."""
    manifest = json.loads(manifest_file.read_text())
    cases = [c for c in manifest["cases"] if c.get("label")]
    test = [c for c in cases if c.get("split") == "test"]
    which = "test split" if test else f"validation fold {fold}"
    manifest["cases"] = test or [
        c for c in cases if c.get("split", "train") == "train" and c.get("fold") == fold
    ]
    manifest["data_root"] = str((manifest_file.parent / manifest.get("data_root", ".")).resolve())
    out.write_text(json.dumps(manifest, indent=1))
    return out, f"{which}, {len(manifest['cases'])} cases"


def base_workflow(args: argparse.Namespace, manifest: Path, work: Path) -> Path:
    """The given workflow, or a minimal one for ``--dims`` (everything else ``auto``)."""
    if args.workflow:
        return Path(args.workflow).resolve()
    path = work / "base_workflow.yaml"
    path.write_text(
        "schema_version: 1\nname: architectures\n"
        f"manifest: {manifest.resolve()}\ntask: {{kind: semantic, dims: {args.dims}}}\n"
    )
    return path


def parameters(run: Path) -> int:
    """Parameters of the planned network (rebuilt from ``resolved_workflow.yaml``)."""
    from medseg.config.load import load_resolved
    from medseg.models.registry import build_model

    model = build_model(load_resolved(run / "resolved_workflow.yaml"))
    return sum(p.numel() for p in model.parameters())


def run_architecture(
    arch: str, args: argparse.Namespace, workflow: Path, manifest: Path, held: Path
) -> dict[str, Any]:
    """Train, predict and evaluate one architecture; returns its row (``error`` on failure)."""
    folder = args.work / arch
    shutil.rmtree(folder, ignore_errors=True)
    overrides = [
        f"manifest={manifest.resolve()}",
        f"model.name={arch}",
        f"train.max_minutes={args.minutes}",
        f"train.epochs={args.epochs}",
        f"train.iterations_per_epoch={args.iterations}",
        *args.set,
    ]
    sets = [x for o in overrides for x in ("--set", o)]
    rc, train_s = medseg(
        "train",
        str(workflow),
        "-o",
        str(folder / "run"),
        "--fold",
        str(args.fold),
        *sets,
        threads=args.threads,
    )
    if rc != 0:
        return {"arch": arch, "error": f"training failed (exit {rc})"}
    tta = ["--tta"] if args.tta else ["--no-tta"]
    predict = [
        "predict",
        str(folder / "run"),
        str(held),
        "-o",
        str(folder / "pred"),
        "--checkpoint",
        args.checkpoint,
    ]
    rc, _ = medseg(*predict, "--no-preview", *tta, threads=args.threads)
    rc_eval, _ = medseg(
        "evaluate",
        str(folder / "pred"),
        "--ref",
        str(held),
        "-o",
        str(folder / "eval"),
        threads=args.threads,
    )
    if rc != 0 or rc_eval != 0:
        return {"arch": arch, "error": f"prediction/evaluation failed (exit {rc}/{rc_eval})"}
    return collect(arch, folder, train_s, args.fold)


def collect(arch: str, folder: Path, train_s: float, fold: int) -> dict[str, Any]:
    """Row of one architecture from its run, prediction report and evaluation summary."""
    summary = json.loads(
        (folder / "run" / f"fold_{fold}" / "validation" / "summary.json").read_text()
    )
    from medseg.artifacts import read_run_report

    report = read_run_report(folder / "pred" / "run_report.json")
    evaluation = json.loads((folder / "eval" / "summary.json").read_text())
    seconds = [c.seconds for c in report.cases if c.status == "done"]
    classes = {}
    for entry in evaluation["classes"].values():
        metrics, lesions = entry["metrics"], entry.get("lesions") or {}
        hd95 = metrics["hd95_mm"]
        classes[entry["name"]] = {
            "dice": metrics["dice"]["mean"],
            "hd95_mm": hd95["mean"],
            "hd95_defined": f"{hd95['n']}/{hd95['n'] + hd95['n_nan']}",
            "lesion_f1": lesions.get("f1"),
            "lesions_tp_fp_fn": [lesions.get(k) for k in ("tp", "fp", "fn")],
        }
    return {
        "arch": arch,
        "parameters": parameters(folder / "run"),
        "train_minutes": train_s / 60,
        "epochs": summary["epochs_run"],
        "seconds_per_case": sum(seconds) / max(len(seconds), 1),
        "classes": classes,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "  n/a" if value is None else f"{value:.{digits}f}"


def mean_dice(row: dict[str, Any]) -> float:
    return sum(c["dice"] for c in row["classes"].values()) / max(len(row["classes"]), 1)


def print_table(rows: list[dict[str, Any]], header: str) -> None:
    """Per-architecture table; ratios against the dynunet row of the same run."""
    print(header)
    ref = next((r for r in rows if r["arch"] == "dynunet" and "error" not in r), None)
    for row in rows:
        if "error" in row:
            print(f"  {row['arch']:14s} {row['error']}")
            continue
        ratio = ""
        if ref is not None:
            ratio = (
                f"  | vs U-Net: Dice x{mean_dice(row) / max(mean_dice(ref), 1e-9):.2f}, "
                f"params x{row['parameters'] / ref['parameters']:.2f}, "
                f"s/case x{row['seconds_per_case'] / max(ref['seconds_per_case'], 1e-9):.2f}"
            )
        print(
            f"  {row['arch']:14s} {row['parameters'] / 1e6:6.2f} M params, trained {row['train_minutes']:.1f} min "
            f"({row['epochs']} epochs), {row['seconds_per_case']:.2f} s/case{ratio}"
        )
        for name, c in row["classes"].items():
            tp, fp, fn = c["lesions_tp_fp_fn"]
            lesions = (
                ""
                if c["lesion_f1"] is None
                else (f"  lesion F1 {_fmt(c['lesion_f1'])} (TP {tp}, FP {fp}, FN {fn})")
            )
            print(
                f"      {name:10s} Dice {_fmt(c['dice'])}  HD95 {_fmt(c['hd95_mm'], 2)} mm "
                f"(defined in {c['hd95_defined']} cases){lesions}"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="medseg manifest (folds, labels)")
    source.add_argument("--synthetic", choices=sorted(SYNTHETIC_DIMS), help="demo: medseg synth")
    parser.add_argument("--size", default="small", help="--synthetic: tiny | small | realistic")
    parser.add_argument("--patients", type=int, default=6, help="--synthetic: patients")
    parser.add_argument("--dims", choices=["2d", "3d"], default=None, help="without --workflow")
    parser.add_argument(
        "--workflow", type=Path, default=None, help="base workflow (manifest is overridden)"
    )
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated registry names")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="training budget per architecture"
    )
    parser.add_argument("--epochs", type=int, default=100000, help="epoch cap (the budget binds)")
    parser.add_argument("--iterations", type=int, default=10, help="iterations per epoch")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every run")
    parser.add_argument(
        "--set", action="append", default=[], help="override for every architecture"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg_architectures"))
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        manifest, dims = synthetic_manifest(args)
        args.dims = args.dims or dims
    else:
        manifest = args.manifest.resolve()
    if not args.workflow and not args.dims:
        raise SystemExit("--dims 2d|3d is needed without --workflow")
    held, described = held_out(manifest, args.work / "held_out.json", args.fold)
    workflow = base_workflow(args, manifest, args.work)
    rows = []
    for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
        rows.append(run_architecture(arch, args, workflow, manifest, held))
        print(f"{arch}: done", file=sys.stderr)
    (args.work / "architectures.json").write_text(json.dumps(rows, indent=1))
    header = (
        f"{manifest.name}: {args.minutes:g} min training budget each, held-out {described}, "
        f"checkpoint {args.checkpoint}, TTA {'on' if args.tta else 'off'}, "
        f"{os.cpu_count()} CPUs, threads {args.threads or 'default'}"
    )
    print_table(rows, header)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
