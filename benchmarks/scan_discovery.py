"""Benchmark: DICOM series discovery, medseg ``find_series`` vs SimpleITK (GDCM), same folder.

Writes a folder of synthetic CT slices (default 20 patients x 100 slices = 2,000 files), then
times, with the files in the page cache, median of ``--repeats`` runs each:

* medseg: ``find_series(root)`` (walk, header-only parse, grouping, sorting, series QC);
* SimpleITK: for every folder, ``GetGDCMSeriesIDs`` then ``GetGDCMSeriesFileNames`` per series
  (GDCM's scanner; returns the sorted file names per series, no QC).

Prints files/s for both and the ratio. Usage::

    python benchmarks/scan_discovery.py [--patients 20] [--repeats 5] [--dir /tmp/medseg_scan_bench]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def _simpleitk_discovery(root: Path) -> int:
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    n = 0
    for folder, _, files in os.walk(root):
        if not any(f.endswith(".dcm") for f in files):
            continue
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
            n += len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
    return n


def _medseg_discovery(root: Path) -> int:
    from medseg.io.dicom import find_series

    return sum(len(s.files) for s in find_series(root).series)


def _time(fn, root: Path, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn(root)
        times.append(time.perf_counter() - start)
    return statistics.median(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/medseg_scan_bench"))
    args = parser.parse_args()
    from medseg.synth.api import synth_ct

    if not (args.dir / "truth.json").exists():
        synth_ct(args.dir, patients=args.patients, size="realistic", fmt="dicom")
    files = [p for p in (args.dir / "images").rglob("*.dcm")]
    for path in files:  # page cache
        path.read_bytes()
    t_medseg, n_medseg = _time(_medseg_discovery, args.dir / "images", args.repeats)
    t_sitk, n_sitk = _time(_simpleitk_discovery, args.dir / "images", args.repeats)
    assert n_medseg == n_sitk == len(files), (n_medseg, n_sitk, len(files))
    print(
        f"files: {len(files)} in {args.patients} series (median of {args.repeats} runs, warm cache)"
    )
    print(f"medseg find_series : {t_medseg:7.3f} s  {len(files) / t_medseg:8.0f} files/s")
    print(f"SimpleITK (GDCM)   : {t_sitk:7.3f} s  {len(files) / t_sitk:8.0f} files/s")
    print(f"ratio (SimpleITK time / medseg time): {t_sitk / t_medseg:.2f}x")


if __name__ == "__main__":
    main()
