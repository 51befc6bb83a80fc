"""Fovea detection accuracy on synthetic OCT: en-face distance to ``truth.fovea_lps_mm``.

Runs the three detectors of :mod:`medseg.reports.fovea` on every eye of a synthetic cohort:
``retina_label`` (thinnest retina; labels include the retina), ``ilm_surface`` (image ILM pit,
with subretinal fluid heights from the labels), and ``ilm_surface`` from the image alone.
Usage, from the repository root::

    python benchmarks/fovea_accuracy.py [--patients 20] [--size small] [--seed 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from medseg.io.read import read_volume
from medseg.reports.enface import enface_frame
from medseg.reports.fovea import find_fovea
from medseg.synth.api import synth_oct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--size", choices=("tiny", "small", "realistic"), default="small")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medseg-fovea-"))
    truth = synth_oct(work, patients=args.patients, size=args.size, fmt="nifti",
                      retina_label=True, seed=args.seed)  # fmt: skip
    errors: dict[str, list[float]] = {"retina_label": [], "ilm_surface+SRF": [], "ilm_surface": []}
    for case in truth.cases:
        labels = read_volume(work / case.label)
        image = read_volume(work / case.image)
        no_retina = labels.with_array(np.where(labels.array == 3, 0, labels.array))
        found = {
            "retina_label": find_fovea(labels, retina_label=3, subretinal_labels=[2],
                                       intraretinal_labels=[1]),
            "ilm_surface+SRF": find_fovea(no_retina, image=image, subretinal_labels=[2]),
            "ilm_surface": find_fovea(no_retina, image=image),
        }  # fmt: skip
        frame = enface_frame(labels.affine, case.laterality or "OD", case.fovea_lps_mm)
        for name, fovea in found.items():
            distance = float(np.hypot(*frame.to_enface(np.asarray(fovea.lps_mm))))
            errors[name].append(distance if fovea.method != "scan_centre" else np.nan)
    spacing = truth.cases[0].spacing_mm
    print(
        f"{len(truth.cases)} eyes, size {args.size}, spacing {spacing} mm (lateral, depth, B-scan)"
    )
    for name, values in errors.items():
        e = np.asarray(values) * 1000
        ok = np.isfinite(e)
        median, p90, top = np.median(e[ok]), np.percentile(e[ok], 90), e[ok].max()
        stats = f"median {median:.0f}  p90 {p90:.0f}  max {top:.0f}"
        print(f"{name:16s} found {ok.sum()}/{len(e)}  en-face error µm: {stats}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
