"""medseg: medical image segmentation from clinical scan folders to per-patient reports.

The public API is imported lazily so that ``import medseg`` stays light (no torch): each name below
is loaded from its module on first access.

Example:
    >>> import medseg
    >>> medseg.__version__ != ""
    True
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from medseg._version import __version__
from medseg.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GeometryError,
    MedsegError,
    MissingDependencyError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    "Volume": "medseg.io.volume",
    "read_volume": "medseg.io.read",
    "write_volume": "medseg.io.read",
    "build_patient_report": "medseg.reports.build",
    "load_prediction_set": "medseg.reports.inputs",
    "write_reports": "medseg.reports.pipeline",
    "synth_ct": "medseg.synth.api",
    "synth_oct": "medseg.synth.api",
    "evaluate_case": "medseg.evaluation.evaluate",
    "evaluate_folder": "medseg.evaluation.folder",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GeometryError",
    "MedsegError",
    "MissingDependencyError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
