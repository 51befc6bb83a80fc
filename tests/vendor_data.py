"""Where the public vendor OCT files (``tests/data/PROVENANCE.md``) are found, or why a test skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import real_data_roots

DATASET = "vendor_oct"
REPO_ROOT = Path(__file__).resolve().parents[1]
REPOS = {"eyepy": "MedVisBonn/eyepy", "spectralis-raw-data": "halirutan/spectralis-raw-data"}

HEYEX_VOL = "eyepy/heyex_vol/test_volume.vol"
HEYEX_XML = "eyepy/heyex_xml/test_volume"
LINE_VOL = "spectralis-raw-data/line_scan.vol"
CIRCLE_VOL = "spectralis-raw-data/circle_scan.vol"


def roots() -> list[Path]:
    """Folders searched, in order: $MEDSEG_REAL_DATA, the user cache, ../shared beside the repo."""
    return [root / DATASET for root in real_data_roots()]


def vendor_file(relative: str) -> Path:
    """The path of one vendor test file, or skip naming the command that copies it."""
    for root in roots():
        if (root / relative).exists():
            return root / relative
    repo = REPOS[relative.split("/")[0]]
    pytest.skip(
        f"public vendor OCT file {relative} not found under {', '.join(map(str, roots()))}: run "
        f"`python benchmarks/get_vendor_oct.py` with a local copy of {repo} "
        f"(`fetch github:{repo}` or `git clone https://github.com/{repo}`)"
    )
