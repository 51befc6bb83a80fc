"""Data-quality findings shared by DICOM discovery, manifest building and checking."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["error", "warning", "info"]


class Issue(BaseModel):
    """One finding about a file, series or case.

    Attributes:
        severity: ``error`` = the data cannot be used (the case is skipped or the check fails);
            ``warning`` = usable, and the message says what medseg did about it; ``info`` = note.
        code: stable machine-readable code, e.g. ``missing_slice``, ``localizer_excluded``.
        message: human-readable sentence: what was observed versus expected, and what was done.
        path: the file or folder concerned, if any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    code: str
    message: str
    path: str | None = None


def has_errors(issues: Iterable[Issue]) -> bool:
    """Whether any issue has severity ``error``."""
    return any(issue.severity == "error" for issue in issues)


def error(code: str, message: str, path: object | None = None) -> Issue:
    """Shorthand for an error issue."""
    return Issue(
        severity="error", code=code, message=message, path=None if path is None else str(path)
    )


def warning(code: str, message: str, path: object | None = None) -> Issue:
    """Shorthand for a warning issue."""
    return Issue(
        severity="warning", code=code, message=message, path=None if path is None else str(path)
    )


def info(code: str, message: str, path: object | None = None) -> Issue:
    """Shorthand for an info issue."""
    return Issue(
        severity="info", code=code, message=message, path=None if path is None else str(path)
    )
