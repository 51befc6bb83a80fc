"""Helpers for commands whose stage has not landed yet."""

from __future__ import annotations

from typing import NoReturn

from medseg import __version__
from medseg.errors import NotAvailableError


def not_available(command: str) -> NoReturn:
    """Raise the documented "not available yet" error (exit code 2)."""
    raise NotAvailableError(
        f"`medseg {command}` is not available yet in medseg {__version__}",
        hint="see the README for the stages this version provides",
    )
