"""Shared fixtures: tiny synthetic scans written once per test session into a temp folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "120")  # stable rich output
os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``synth_dir(kind, fmt, **options)`` writes (once) and returns a synthetic cohort."""
    cache: dict[tuple, Path] = {}

    def make(kind: str, fmt: str = "dicom", **options: object) -> Path:
        key = (kind, fmt, tuple(sorted(options.items())))
        if key not in cache:
            from medseg.synth.api import synth_ct, synth_oct

            out = tmp_path_factory.mktemp(f"synth_{kind}_{fmt}")
            options = {"patients": 2, "size": "tiny", **options}
            (synth_ct if kind == "ct" else synth_oct)(out, fmt=fmt, **options)  # type: ignore[operator]
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Two shared cores: two OpenMP threads competing with other work are many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
