"""Time ``medseg report`` on predictions of N synthetic patients (default 20, OCT, DICOM).

The synthetic truth labels stand in for predictions (with a run report pointing at the DICOM
sources), so the timing covers reading labels and images, measuring, fovea detection, figures and
HTML. Usage, from the repository root::

    python benchmarks/report_speed.py [--patients 20] [--kind oct|ct] [--size small] [--jobs 2]

Prints the wall time of the whole command (interpreter start included) and per case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_predictions(root: Path, pred: Path, modality: str) -> int:
    """Copy the truth label maps as predictions and write a run report; return the case count."""
    from medseg.synth.truth import Truth

    truth = Truth.load(root / "truth.json")
    pred.mkdir(parents=True, exist_ok=True)
    cases = []
    for case in truth.cases:
        shutil.copy(root / case.label, pred / f"{case.case_id}.nii.gz")
        cases.append({
            "case_id": case.case_id, "status": "done", "source": str(root / case.image),
            "patient_id": case.case_id.split("_")[0], "study_date": case.study_date,
            "laterality": case.laterality, "modality": modality,
            "outputs": {"labels": f"{case.case_id}.nii.gz"},
        })  # fmt: skip
    run = {"schema_version": 1, "labels": truth.labels, "lesion_labels": truth.lesion_labels,
           "model": {"name": "synthetic-truth"}, "cases": cases}  # fmt: skip
    (pred / "run_report.json").write_text(json.dumps(run, indent=2))
    return len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--kind", choices=("oct", "ct"), default="oct")
    parser.add_argument("--size", choices=("tiny", "small", "realistic"), default="small")
    parser.add_argument("--visits", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (medseg report -j)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args()

    from medseg.synth.api import synth_ct, synth_oct

    work = args.keep or Path(tempfile.mkdtemp(prefix="medseg-report-bench-"))
    synth = synth_oct if args.kind == "oct" else synth_ct
    synth(work / "scans", patients=args.patients, fmt="dicom", size=args.size, visits=args.visits)
    n_cases = write_predictions(
        work / "scans", work / "pred", "OPT" if args.kind == "oct" else "CT"
    )
    command = [sys.executable, "-m", "medseg", "--no-progress", "-q", "report", str(work / "pred"),
               "-o", str(work / "reports"), "--jobs", str(args.jobs)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"medseg report failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    print(
        f"medseg report: {args.patients} {args.kind.upper()} patients ({args.size}, DICOM), "
        f"{n_cases} cases, {args.jobs} job(s): {seconds:.1f} s wall "
        f"({seconds / n_cases:.2f} s per case)"
    )
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
