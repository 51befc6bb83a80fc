"""``medseg.reports`` must not import torch or MONAI, even when it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CODE = {
    "import": "import medseg.reports",
    "cli_help": "from typer.testing import CliRunner; from medseg.cli import app; "
    "assert CliRunner().invoke(app, ['report', '--help']).exit_code == 0",
}


@pytest.mark.parametrize("name", sorted(CODE))
def test_reports_leave_torch_out(name: str) -> None:
    probe = f"{CODE[name]}\nimport sys\nprint('torch' in sys.modules, 'monai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"


RUN_REPORT = """
import sys
from pathlib import Path
from medseg.synth.api import synth_oct
from medseg.reports import load_prediction_set, write_reports
from tests.reports.conftest import write_predictions
tmp = Path(sys.argv[1])
synth_oct(tmp / "oct", patients=1, size="tiny", fmt="nifti")
write_predictions(tmp / "oct", tmp / "pred", modality="OPT")
outcomes = list(write_reports(load_prediction_set(tmp / "pred"), tmp / "out"))
assert all(o.status == "done" for o in outcomes), outcomes
print('torch' in sys.modules, 'monai' in sys.modules)
"""


def test_running_a_report_leaves_torch_out(tmp_path: Path) -> None:
    """Measure, analyse and render a tiny OCT report in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", RUN_REPORT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
