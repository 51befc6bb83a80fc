"""Optional dependencies: import on first use, fail with the pip extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from medseg.errors import MissingDependencyError


def require(module: str, *, extra: str | None = None, purpose: str = "this") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(module.split(".")[0], extra=extra, purpose=purpose) from err
