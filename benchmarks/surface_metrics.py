"""Benchmark HD95 + ASSD: medseg against MONAI (and MedPy / DeepMind surface-distance if present).

Cases:
  blobs  128³ random smooth blobs (prediction correlated with the reference), spacing 0.8×0.8×1.5
  ct     512×512×200 CT-like grid, seven small lesions (one missed, one false positive),
         spacing 0.8×0.8×2.5

Fairness: the parent writes the masks once as .npy; every (tool, case) then runs in a fresh
subprocess that loads them, imports its tool and makes one untimed warm-up call on an 8³ mask
(lazy imports), records its resident memory, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``) and times ``--repeats`` calls (fewer once they add up to 20 s),
reporting the median. Peak memory is the peak RSS over all calls minus the RSS before the first
one (the inputs themselves are not counted). Each tool computes HD95 and ASSD as its users would:
medseg once with ``surface_distances`` (both from one computation); MONAI with
``compute_hausdorff_distance(percentile=95)`` + ``compute_average_surface_distance(symmetric=
True)`` on float tensors made before timing (its usual input; bool tensors cost it ~2x more);
MedPy with ``hd95`` + ``assd``; DeepMind with ``compute_surface_distances`` and its robust
Hausdorff / average distances. MONAI runs with torch's default threads; medseg is
single-threaded.

HD95 differs by definition between tools: medseg and MONAI take the max of the two directed 95th
percentiles, MedPy the 95th percentile of the pooled distances, DeepMind weights by surface area
(and its "ASSD" here is the mean of its two directed, area-weighted averages).

Usage:
  python benchmarks/surface_metrics.py [--cases blobs,ct] [--repeats 5]
  (MedPy / DeepMind are used when importable, e.g. after
  ``pip install --target /tmp/benchpkgs --no-deps medpy surface-distance`` and
  ``PYTHONPATH=/tmp/benchpkgs``.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = ("medseg", "monai", "medpy", "deepmind")
TIME_BUDGET_S = 20.0  # stop repeating a slow tool once its runs add up to this
OPTIONAL = {"medpy": "medpy", "deepmind": "surface_distance"}


def make_blobs() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Correlated random blobs on a 128³ grid."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((128, 128, 128)), 6.0)
    noise = ndimage.gaussian_filter(rng.standard_normal((128, 128, 128)), 3.0)
    ref = field > 0.5 * field.std()
    pred = field + 0.6 * field.std() / noise.std() * noise > 0.5 * field.std()
    return pred, ref, (0.8, 0.8, 1.5)


def _ellipsoid(shape: tuple[int, ...], center: np.ndarray, radii_mm: np.ndarray, spacing) -> tuple:
    """Voxel indices of an ellipsoid (computed on its bounding box only)."""
    half = np.ceil(radii_mm / np.asarray(spacing)).astype(int) + 1
    lo = np.maximum(center - half, 0)
    hi = np.minimum(center + half + 1, shape)
    grid = np.mgrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    offsets = [(g - c) * s / r for g, c, s, r in zip(grid, center, spacing, radii_mm)]
    inside = sum(o**2 for o in offsets) <= 1.0
    return tuple(g[inside] for g in grid)


def make_ct() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Seven small lesions in a 512×512×200 grid; one missed, one false positive."""
    spacing = (0.8, 0.8, 2.5)
    shape = (512, 512, 200)
    rng = np.random.default_rng(1)
    ref = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    for k in range(7):
        center = rng.integers([60, 60, 20], [450, 450, 180])
        radii = rng.uniform(3.0, 12.0, size=3)
        ref[_ellipsoid(shape, center, radii, spacing)] = True
        if k == 6:
            continue  # missed lesion
        moved = center + rng.integers(-2, 3, size=3)
        pred[_ellipsoid(shape, moved, radii * rng.uniform(0.8, 1.2, size=3), spacing)] = True
    pred[_ellipsoid(shape, np.array([470, 40, 100]), np.array([4.0, 4.0, 5.0]), spacing)] = True
    return pred, ref, spacing


CASES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]] = {
    "blobs": make_blobs,
    "ct": make_ct,
}


# ----------------------------------------------------------------------------------- child side
def _inputs(name: str, pred: np.ndarray, ref: np.ndarray) -> tuple[Any, Any]:
    """Each tool's natural input, prepared outside the timed region (MONAI: float tensors
    (1, 1, X, Y, Z), as AsDiscrete / one-hot produce; bool tensors cost it ~2x more)."""
    if name != "monai":
        return pred, ref
    import torch

    return torch.from_numpy(pred)[None, None].float(), torch.from_numpy(ref)[None, None].float()


def _tool(name: str) -> Callable[[Any, Any, tuple], tuple[float, float]]:
    if name == "medseg":
        from medseg.evaluation.metrics import surface_distances

        def run(pred, ref, spacing):
            d = surface_distances(pred, ref, spacing=spacing)
            return d.hausdorff_mm(95.0), d.assd_mm

    elif name == "monai":
        from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

        def run(pred, ref, spacing):
            kw = {"include_background": True, "spacing": list(spacing)}
            hd = compute_hausdorff_distance(pred, ref, percentile=95, **kw)
            asd = compute_average_surface_distance(pred, ref, symmetric=True, **kw)
            return float(hd.item()), float(asd.item())

    elif name == "medpy":
        from medpy.metric import binary

        def run(pred, ref, spacing):
            return binary.hd95(pred, ref, spacing), binary.assd(pred, ref, spacing)

    elif name == "deepmind":
        import surface_distance as sd

        def run(pred, ref, spacing):
            distances = sd.compute_surface_distances(ref, pred, spacing)
            to_pred, to_ref = sd.compute_average_surface_distance(distances)
            return sd.compute_robust_hausdorff(distances, 95), (to_pred + to_ref) / 2

    else:
        raise ValueError(name)
    return run


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def child(tool: str, case_dir: Path, repeats: int) -> dict[str, Any]:
    """Run one tool on one case in this (fresh) process; return times, memory, values."""
    import gc
    import warnings

    warnings.simplefilter("ignore")
    spacing = tuple(json.loads((case_dir / "spacing.json").read_text()))
    run = _tool(tool)
    warm = np.zeros((8, 8, 8), bool)
    warm[2:5, 2:5, 2:5] = True
    run(*_inputs(tool, warm, np.roll(warm, 1, axis=0)), spacing)  # lazy imports, not timed
    pred, ref = _inputs(tool, np.load(case_dir / "pred.npy"), np.load(case_dir / "ref.npy"))
    gc.collect()
    rss_before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM to the current RSS
    times: list[float] = []
    while len(times) < repeats and sum(times) < TIME_BUDGET_S:
        start = time.perf_counter()
        values = run(pred, ref, spacing)
        times.append(time.perf_counter() - start)
    peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
    return {
        "tool": tool,
        "seconds": statistics.median(times),
        "runs": len(times),
        "peak_mb": peak_mb,
        "hd95_mm": float(values[0]),
        "assd_mm": float(values[1]),
    }


# ---------------------------------------------------------------------------------- parent side
def available_tools() -> list[str]:
    return [t for t in TOOLS if t not in OPTIONAL or importlib.util.find_spec(OPTIONAL[t])]


def run_case(name: str, tools: list[str], repeats: int, workdir: Path) -> list[dict[str, Any]]:
    pred, ref, spacing = CASES[name]()
    case_dir = workdir / name
    case_dir.mkdir()
    np.save(case_dir / "pred.npy", pred)
    np.save(case_dir / "ref.npy", ref)
    (case_dir / "spacing.json").write_text(json.dumps(spacing))
    print(
        f"\n{name}: shape {pred.shape}, spacing {spacing} mm, "
        f"{int(ref.sum())} reference / {int(pred.sum())} predicted voxels",
        flush=True,
    )
    rows = []
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    for tool in tools:
        command = [sys.executable, __file__, "--child", tool, str(case_dir), str(repeats)]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"  {tool}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def report(name: str, rows: list[dict[str, Any]]) -> None:
    base = next((r for r in rows if r["tool"] == "medseg"), None)
    header = f"  {'tool':<9}{'time s':>9}{'runs':>5}{'peak MB':>9}{'HD95 mm':>10}{'ASSD mm':>10}"
    print(header + f"{'time / medseg':>15}{'mem / medseg':>14}")
    for r in rows:
        time_ratio = r["seconds"] / base["seconds"] if base else float("nan")
        mem_ratio = r["peak_mb"] / max(base["peak_mb"], 1.0) if base else float("nan")
        print(
            f"  {r['tool']:<9}{r['seconds']:>9.3f}{r['runs']:>5}{r['peak_mb']:>9.0f}"
            f"{r['hd95_mm']:>10.4f}{r['assd_mm']:>10.4f}{time_ratio:>14.1f}x{mem_ratio:>13.1f}x"
        )
    monai = next((r for r in rows if r["tool"] == "monai"), None)
    if base and monai:
        rel = max(
            abs(base[k] - monai[k]) / max(abs(monai[k]), 1e-12) for k in ("hd95_mm", "assd_mm")
        )
        print(
            f"  medseg vs MONAI: {monai['seconds'] / base['seconds']:.1f}x faster, "
            f"{monai['peak_mb'] / max(base['peak_mb'], 1.0):.1f}x less peak memory, "
            f"largest relative difference of values {rel:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="blobs,ct")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "CASE_DIR", "REPEATS"))
    args = parser.parse_args()
    if args.child:
        tool, case_dir, repeats = args.child
        print(json.dumps(child(tool, Path(case_dir), int(repeats))))
        return
    tools = [t for t in available_tools() if t in args.tools.split(",")]
    print(f"machine: {os.cpu_count()} CPU cores; tools: {', '.join(tools)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            report(name, run_case(name, tools, args.repeats, Path(tmp)))


if __name__ == "__main__":
    main()
