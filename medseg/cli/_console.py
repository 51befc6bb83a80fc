"""Terminal output owned by the CLI: consoles, logging set-up, error rendering, progress bars."""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medseg.errors import MedsegError

out = Console(soft_wrap=False)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class CLIState:
    """Options of the root command that every subcommand can read from ``ctx.obj``."""

    debug: bool = False
    progress: bool = True


def setup_logging(*, verbose: int = 0, quiet: bool = False) -> None:
    """Send the ``medseg`` logger to stderr through rich (INFO; -v DEBUG; -q WARNING)."""
    from rich.logging import RichHandler

    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("medseg")
    logger.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err, show_path=False, show_time=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def render_error(error: MedsegError, *, debug: bool = False) -> None:
    """Print a :class:`MedsegError` as one red message (with the traceback when ``debug``)."""
    if debug:
        err.print(escape("".join(traceback.format_exception(error))), highlight=False)
    err.print(f"[bold red]Error:[/] [red]{escape(error.describe())}[/]", highlight=False)


def render_usage_error(message: str, command: str | None) -> None:
    """One line for a bad option, argument or path, pointing at ``--help``."""
    where = f" (see '{command} --help')" if command else ""
    err.print(f"[bold red]Error:[/] [red]{escape(message)}{escape(where)}[/]", highlight=False)


def render_bug(error: BaseException) -> None:
    """An unexpected exception is a bug: show the traceback and ask for a report."""
    err.print(escape("".join(traceback.format_exception(error))), highlight=False)
    err.print(
        "[bold red]Internal error:[/] this is a bug in medseg; please report it with the "
        "traceback above (run again with --debug for more detail).",
        highlight=False,
    )


def make_progress(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr; disabled without a TTY or with ``--no-progress``."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        disable=not (enabled and sys.stderr.isatty()),
        transient=False,
    )
