"""``import medseg`` and ``medseg --help`` must not import torch (fast CLI, light library)."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT_IMPORTS = [
    "import medseg",
    "import medseg.synth.api",
    "import medseg.io.nifti, medseg.io.images",
    "from typer.testing import CliRunner; from medseg.cli import app; "
    "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output",
]


@pytest.mark.parametrize("code", LIGHT_IMPORTS)
def test_light_imports_leave_torch_out(code: str) -> None:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules, 'monai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_lazy_public_api_resolves() -> None:
    import medseg

    assert callable(medseg.synth_ct)
    assert medseg.Volume.__name__ == "Volume"
    with pytest.raises(AttributeError):
        _ = medseg.no_such_name  # type: ignore[attr-defined]
