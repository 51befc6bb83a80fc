"""Is an RTSTRUCT exact enough? A mask -> RT structure set -> mask round trip with rt-utils.

medseg writes DICOM SEG, not RTSTRUCT (README, "Results for hospital systems"). This script is
the measurement behind that choice: it writes a 40-slice CT series (pydicom's CT_small.dcm as the
template), turns three label masks into an RTSTRUCT with rt-utils (the maintained converter on
PyPI), reads the masks back two ways and prints, per structure, the voxels the round trip
changed and the Dice against the original:

* with rt-utils itself (OpenCV ``fillPoly``: pixels *on* a contour count as inside);
* with the plain even-odd rule on pixel centres (pixels strictly inside a contour), another
  common way to rasterize planar contours: rt-utils' contours run through the centres of the
  border pixels, so what a receiving system gets depends on its rasterization rule, which DICOM
  does not fix.

A DICOM SEG holds the masks themselves (``tests/inference/test_seg_codes.py`` reads them back
equal).

Run with a Python that has ``rt-utils`` (it pulls opencv-python), not medseg's environment::

    /work/bench-venv/bin/pip install rt-utils
    /work/bench-venv/bin/python benchmarks/rtstruct_roundtrip.py
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _series(folder: Path, n_slices: int) -> None:
    """A CT series of ``n_slices`` copies of pydicom's CT_small.dcm, 2 mm apart."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series = generate_uid()
    for k in range(n_slices):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, 2.0 * k]
        ds.SliceLocation = 2.0 * k
        ds.SliceThickness = 2.0
        ds.save_as(folder / f"slice{k:03d}.dcm")


def _masks(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """(rows, columns, slices) masks a segmentation produces: solid, with holes, thin, specks."""
    r, c, s = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2
    dist = np.sqrt((r - centre[0]) ** 2 + (c - centre[1]) ** 2 + (4 * (s - centre[2])) ** 2)
    ring = np.sqrt((r - 30.0) ** 2 + (c - 30.0) ** 2)
    checker = (r // 3 + c // 3) % 2 == 0
    return {
        "sphere": dist < 20,
        "ring_with_hole": (ring >= 6) & (ring < 12) & (s > 5) & (s < 30),
        "ring_and_island": ((ring >= 6) & (ring < 12) | (ring < 2)) & (s > 5) & (s < 30),
        "thin_band": (np.abs(np.sqrt((r - 20.0) ** 2 + (c - 90.0) ** 2) - 15) < 1.2)
        & (s > 5)
        & (s < 30),
        "diagonal_specks": checker & (r > 90) & (r < 110) & (c > 90) & (c < 110) & (s == 20),
        "single_voxels": (r % 17 == 0) & (c % 23 == 0) & (s % 7 == 0),
    }


def _pixel_polygons(rtstruct: Any, name: str) -> dict[int, list[np.ndarray]]:
    """Slice index -> contours as (row, column) pixel coordinates."""
    series = rtstruct.series_data
    z = [float(ds.ImagePositionPatient[2]) for ds in series]
    out: dict[int, list[np.ndarray]] = {}
    roi = next(r.ROINumber for r in rtstruct.ds.StructureSetROISequence if r.ROIName == name)
    contours = next(c for c in rtstruct.ds.ROIContourSequence if c.ReferencedROINumber == roi)
    for item in getattr(contours, "ContourSequence", []):
        xyz = np.asarray(item.ContourData, float).reshape(-1, 3)
        k = int(np.argmin(np.abs(np.asarray(z) - xyz[0, 2])))
        ds = series[k]
        x0, y0 = (float(v) for v in ds.ImagePositionPatient[:2])
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        pixels = np.stack([(xyz[:, 1] - y0) / row_mm, (xyz[:, 0] - x0) / col_mm], axis=1)
        out.setdefault(k, []).append(pixels)
    return out


def _strictly_inside(polygons: dict[int, list[np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """Even-odd rule on pixel centres: a pixel is in when its centre is strictly inside."""
    mask = np.zeros(shape, bool)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for k, contours in polygons.items():
        for poly in contours:
            inside = np.zeros(shape[:2], bool)
            r0, c0 = poly[:, 0], poly[:, 1]
            r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
            for a, b, p, q in zip(r0, c0, r1, c1):
                crosses = (a > rows) != (p > rows)
                with np.errstate(divide="ignore", invalid="ignore"):
                    at = b + (rows - a) * (q - b) / (p - a)
                inside ^= crosses & (cols < at)
            mask[:, :, k] ^= inside
    return mask


def _row(name: str, mask: np.ndarray, got: np.ndarray) -> str:
    lost, added = int((mask & ~got).sum()), int((got & ~mask).sum())
    dice = 2 * (mask & got).sum() / max(1, mask.sum() + got.sum())
    return f"{name:20s} {int(mask.sum()):8d} {lost + added:8d} {lost:6d} {added:6d} {dice:7.4f}"


def main() -> int:
    try:
        from rt_utils import RTStructBuilder
    except ImportError:
        print("rt-utils not installed: pip install rt-utils (in a separate environment)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ct"
        folder.mkdir()
        _series(folder, 40)
        masks = _masks((128, 128, 40))
        rtstruct = RTStructBuilder.create_new(dicom_series_path=str(folder))
        for name, mask in masks.items():
            rtstruct.add_roi(mask=mask, name=name)
        rtstruct.save(str(Path(tmp) / "rt.dcm"))
        back = RTStructBuilder.create_from(str(folder), str(Path(tmp) / "rt.dcm"))
        header = f"{'structure':20s} {'voxels':>8s} {'changed':>8s} {'lost':>6s} {'added':>6s} "
        for title, read in (
            ("read back by rt-utils (OpenCV fillPoly, contour pixels inside)",
             lambda n: back.get_roi_mask_by_name(n)),
            ("read back by the even-odd rule on pixel centres",
             lambda n: _strictly_inside(_pixel_polygons(back, n), masks[n].shape)),
        ):  # fmt: skip
            print(f"\n{title}\n{header}{'Dice':>7s}")
            for name, mask in masks.items():
                print(_row(name, mask, read(name)))
    print("\nDICOM SEG (medseg --dicom-seg): the masks themselves, 0 voxels changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
