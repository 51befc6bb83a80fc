"""Benchmark: medseg's sliding-window predictor vs plain MONAI ``sliding_window_inference``.

Part A - same computation (exact mode: no crop, no skipping), same network and weights:
  * 3D: a DynUNet shaped like nnU-Net's 3d_fullres (filters 32..320, 6 levels, 31 M parameters,
    random weights) on a 1x1x160x192x192 volume, window 128x128x128, overlap 0.5, gaussian;
  * 2D: the trained OCT model (or a random 2D DynUNet) over a 49-B-scan stack of 496x768.
  Prints time, voxels/s, the ratio, and the max abs difference of the softmax probabilities
  (must be < 1e-4).
Part B - per case with trained models on synthetic cases (``benchmarks/train_quality.py`` runs):
  plain MONAI (``sliding_window_inference`` / ``SliceInferer`` on the preprocessed image) vs
  medseg's default path (crop to the foreground, skip empty windows), each warmed up once, then
  the best of ``--repeats`` interleaved runs. Prints seconds per case, the
  speed-up, Dice of both against the truth (source grid), and how many voxels plain MONAI
  labelled as foreground outside medseg's crop (the label map must be unchanged there).
nnU-Net's predictor is timed too when ``nnunetv2`` is importable (it is not a dependency).

Usage::

    python benchmarks/sliding_window.py [--ct-run /tmp/medseg_quality_ct/run]
        [--oct-run /tmp/medseg_quality_oct/run] [--skip-3d-exact] [--only-cases]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SliceInferer, sliding_window_inference
from monai.networks.nets import DynUNet

from medseg.inference.prediction import prepare
from medseg.inference.predictor import Predictor
from medseg.inference.windows import (
    WindowSettings,
    crop_margin,
    foreground_box,
    foreground_mask,
    labels_from_probabilities,
    predict_probabilities,
    scan_interval,
    sliding_window_logits,
    window_settings,
)
from medseg.io.read import read_volume


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _best_of(fns, repeats: int):  # type: ignore[no-untyped-def]
    """Run each function once untimed (warm-up: oneDNN primitives, allocator), then ``repeats``
    times interleaved; returns each one's last output and its fastest time."""
    outs = [fn() for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            outs[i], seconds = _timed(fn)
            best[i] = min(best[i], seconds)
    return outs, best


def part_a_3d() -> None:
    torch.manual_seed(0)
    strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    net = DynUNet(
        3,
        1,
        3,
        kernel_size=[[3, 3, 3]] * 6,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=[32, 64, 128, 256, 320, 320],
        norm_name=("INSTANCE", {"affine": True}),
    ).eval()
    image = torch.randn(1, 160, 192, 192)
    window = (128, 128, 128)
    settings = WindowSettings(window, 3, 2, 0.5, "gaussian", 1, False, False)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    with torch.no_grad():
        theirs, t_monai = _timed(
            lambda: sliding_window_inference(
                image[None], window, 1, net, overlap=0.5, mode="gaussian"
            )[0]
        )
        (ours, _), t_ours = _timed(
            lambda: sliding_window_logits(net, image, settings, num_classes=3)
        )
    diff = float((torch.softmax(ours, 0) - torch.softmax(theirs, 0)).abs().max())
    voxels = image[0].numel()
    print(f"A 3D  DynUNet {params:.1f} M params, 160x192x192, window 128^3, overlap 0.5, gaussian")
    print(
        f"      MONAI sliding_window_inference {t_monai:7.1f} s  {voxels / t_monai / 1e3:7.1f} kvox/s"
    )
    print(
        f"      medseg exact mode             {t_ours:7.1f} s  {voxels / t_ours / 1e3:7.1f} kvox/s  ratio {t_monai / t_ours:.2f}x"
    )
    print(f"      max |p_medseg - p_MONAI| = {diff:.2e} ({'OK' if diff < 1e-4 else 'MISMATCH'})")


def _oct_network(oct_run: Path | None) -> tuple[torch.nn.Module, tuple[int, int]]:
    if oct_run is not None and oct_run.exists():
        predictor = Predictor.from_run(oct_run)
        return predictor.models[0], tuple(predictor.resolved.patch_size)  # type: ignore[return-value]
    torch.manual_seed(0)
    strides = [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2]]
    net = DynUNet(
        2,
        1,
        3,
        kernel_size=[[3, 3]] * 6,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=[32, 64, 128, 256, 512, 512],
        norm_name=("INSTANCE", {"affine": True}),
    ).eval()
    return net, (256, 256)


def part_a_2d(oct_run: Path | None) -> None:
    net, patch = _oct_network(oct_run)
    image = torch.randn(1, 768, 496, 49)
    settings = WindowSettings((*patch, 1), 2, 2, 0.5, "gaussian", 4, False, False)
    inferer = SliceInferer(
        roi_size=patch, sw_batch_size=4, spatial_dim=2, overlap=0.5, mode="gaussian"
    )
    with torch.no_grad():
        theirs, t_monai = _timed(lambda: inferer(image[None], net)[0])
        (ours, _), t_ours = _timed(
            lambda: sliding_window_logits(net, image, settings, num_classes=3)
        )
    diff = float((torch.softmax(ours, 0) - torch.softmax(theirs, 0)).abs().max())
    print(
        f"A 2D  {'trained OCT model' if oct_run else 'random 2D DynUNet'}, 49 B-scans of 496x768, window {patch}, overlap 0.5"
    )
    print(
        f"      MONAI SliceInferer            {t_monai:7.1f} s  {image[0].numel() / t_monai / 1e3:7.1f} kvox/s"
    )
    print(f"      medseg exact mode             {t_ours:7.1f} s  ratio {t_monai / t_ours:.2f}x")
    print(f"      max |p_medseg - p_MONAI| = {diff:.2e} ({'OK' if diff < 1e-4 else 'MISMATCH'})")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0


def part_b(run: Path, case_image: Path, case_label: Path, name: str, repeats: int = 3) -> float:
    predictor = Predictor.from_run(run)
    resolved = predictor.resolved
    volume = read_volume(case_image)
    label_volume = read_volume(case_label)
    prepared = prepare(resolved, volume)
    image = prepared.image(torch.device("cpu"))
    net = predictor.models[0]
    settings = window_settings(resolved)
    exact = WindowSettings(**{**settings.__dict__, "crop_foreground": False, "skip_empty": False})
    k = resolved.num_classes
    with torch.no_grad():
        if resolved.spatial_dims == 3:

            def plain():
                return sliding_window_inference(
                    image[None],
                    resolved.patch_size,
                    int(resolved.infer.sw_batch_size),
                    net,
                    overlap=resolved.infer.overlap,
                    mode=resolved.infer.blend,
                )[0]
        else:
            inferer = SliceInferer(
                roi_size=resolved.patch_size,
                sw_batch_size=int(resolved.infer.sw_batch_size),
                spatial_dim=resolved.slice_axis,
                overlap=resolved.infer.overlap,
                mode=resolved.infer.blend,
            )
            plain = lambda: inferer(image[None], net)[0]  # noqa: E731
        (monai_logits, fast), (t_monai, t_fast) = _best_of(
            [plain, lambda: predict_probabilities(net, image, settings, num_classes=k)], repeats
        )
        exact_probs, _ = _timed(lambda: predict_probabilities(net, image, exact, num_classes=k))
    monai_labels = torch.argmax(monai_logits, 0).numpy()
    fast_labels = torch.argmax(fast, 0).numpy()
    # Dice against the truth on the source grid: both inverted the same way (Invertd)
    ref = label_volume.array
    monai_source = labels_from_probabilities(
        prepared.to_source(torch.softmax(monai_logits, 0), nearest=False)
    )
    fast_source = labels_from_probabilities(prepared.to_source(fast, nearest=False))
    diff = float((torch.softmax(monai_logits, 0) - exact_probs).abs().max())
    mask = foreground_mask(image, settings.foreground_rule)
    interval = scan_interval(image.shape[1:], settings.window, settings.overlap)
    box = foreground_box(
        mask, image.shape[1:], crop_margin(settings.window), settings.window, interval
    )
    outside = np.ones(fast_labels.shape, bool)
    outside[box] = False
    print(
        f"B {name}: preprocessed {tuple(image.shape[1:])}, window {resolved.patch_size}, overlap {resolved.infer.overlap}"
    )
    print(
        f"      plain MONAI   {t_monai:7.2f} s   medseg (crop + skip) {t_fast:7.2f} s   speed-up {t_monai / t_fast:.2f}x"
    )
    print(
        f"      exact mode vs MONAI: max |dp| = {diff:.2e}; crop keeps {100 * (1 - outside.mean()):.0f}% of the voxels"
    )
    print(
        f"      foreground voxels MONAI found outside the crop: {int((monai_labels[outside] > 0).sum())} (label map unchanged outside)"
    )
    for value, cname in resolved.plan.labels.items():
        if value == "0":
            continue
        v = int(value)
        print(
            f"      {cname:8s} Dice vs truth (source grid): MONAI {_dice(monai_source == v, ref == v):.4f}  "
            f"medseg {_dice(fast_source == v, ref == v):.4f}"
        )
    return t_monai / t_fast


def _first_case(run: Path) -> tuple[Path, Path]:
    manifest = json.loads((run.parent / "held_out.json").read_text())
    root = Path(manifest["data_root"])
    case = manifest["cases"][0]
    image = case["images"]["image"]
    image_path = root / image if isinstance(image, str) else root / Path(image["files"][0]).parent
    return image_path, root / case["label"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct-run", type=Path, default=Path("/tmp/medseg_quality_ct/run"))
    parser.add_argument("--oct-run", type=Path, default=Path("/tmp/medseg_quality_oct/run"))
    parser.add_argument("--skip-3d-exact", action="store_true")
    parser.add_argument("--only-cases", action="store_true", help="part B only")
    parser.add_argument("--repeats", type=int, default=3, help="part B: best of N after a warm-up")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    try:
        import nnunetv2  # noqa: F401

        print(
            "nnU-Net v2 is importable, but its predictor needs a trained nnU-Net folder: not timed here"
        )
    except ImportError:
        print("nnU-Net v2 not installed: compared with MONAI only")
    if not (args.skip_3d_exact or args.only_cases):
        part_a_3d()
    if not args.only_cases:
        part_a_2d(args.oct_run if args.oct_run.exists() else None)
    for name, run in (("CT (3D)", args.ct_run), ("OCT (2D)", args.oct_run)):
        if run.exists():
            part_b(run, *_first_case(run), name, args.repeats)
        else:
            print(f"B {name}: no trained run at {run}; run benchmarks/train_quality.py first")


if __name__ == "__main__":
    main()
