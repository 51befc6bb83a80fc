"""The medseg error hierarchy.

A :class:`MedsegError` is a problem the *user* can fix (bad config, unreadable scan, geometry
mismatch, missing optional package). Its message says what happened, where (file or case), what
was observed versus expected, and carries an optional hint. The CLI prints it as one red message
without a traceback and exits with :attr:`MedsegError.exit_code` (2 for configuration and usage
problems, 1 for runtime problems). Misuse of the Python API raises built-in ``TypeError`` /
``ValueError`` instead.

Hierarchy::

    MedsegError
    ├── ConfigError            (exit 2) workflow / manifest / option problems
    │   └── NotAvailableError  (exit 2) a command or feature this version does not have
    ├── DataError              (exit 1) unreadable or invalid scans, labels, files
    │   └── GeometryError      (exit 1) shape / affine / spacing mismatches
    ├── CheckpointError        (exit 1) missing or incompatible trained runs
    └── MissingDependencyError (exit 2) an optional package is needed; names the pip extra
"""

from __future__ import annotations

import os

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GeometryError",
    "MedsegError",
    "MissingDependencyError",
    "NotAvailableError",
]


class MedsegError(Exception):
    """Base class of user-fixable errors.

    Args:
        message: what happened, observed versus expected.
        hint: what the user can do about it.
        case_id: the case the error belongs to, if any (pseudonymous id, never a patient name).
        path: the file or folder involved, if any.
    """

    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        case_id: str | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.case_id = case_id
        self.path = None if path is None else str(path)
        super().__init__(self.describe())

    def describe(self, *, with_hint: bool = True) -> str:
        """Return the full one-paragraph message: ``case X: <message> (<path>) Hint: ...``."""
        text = self.message
        if self.path and self.path not in text:
            text = f"{text} [{self.path}]"
        if self.case_id and self.case_id not in text:
            text = f"case {self.case_id}: {text}"
        if with_hint and self.hint:
            text = f"{text} Hint: {self.hint}"
        return text


class ConfigError(MedsegError):
    """A workflow, manifest or command-line option is invalid (exit code 2)."""

    exit_code = 2


class NotAvailableError(ConfigError):
    """A command or feature that this version of medseg does not provide yet (exit code 2)."""


class DataError(MedsegError):
    """A scan, label or other input file cannot be read or is invalid (exit code 1)."""


class GeometryError(DataError):
    """Shapes, affines or spacings that must agree do not (exit code 1)."""


class CheckpointError(MedsegError):
    """A trained run or checkpoint is missing, corrupt or incompatible (exit code 1)."""


class MissingDependencyError(MedsegError, ImportError):
    """An optional package is needed for this operation; the message names the pip extra.

    Args:
        package: the importable module that is missing, e.g. ``"pylibjpeg"``.
        extra: the medseg extra that installs it, e.g. ``"dicom-codecs"``.
        purpose: what it is needed for, e.g. ``"reading JPEG 2000 DICOM"``.
    """

    exit_code = 2

    def __init__(self, package: str, *, extra: str | None = None, purpose: str = "this") -> None:
        install = f"pip install 'medseg[{extra}]'" if extra else f"pip install {package}"
        self.package = package
        self.extra = extra
        super().__init__(f"{purpose} needs the package {package!r}", hint=f"run `{install}`")
