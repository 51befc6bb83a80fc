"""The ``medseg`` command line (typer).

One small module per command: it parses options, calls one API function and renders the result.
Heavy libraries (torch, MONAI) are imported inside the commands, so ``medseg --help`` stays fast.

Errors: a :class:`~medseg.errors.MedsegError` prints as one red message without a traceback
(``--debug`` shows it) and exits with 2 (configuration / usage) or 1 (runtime). A bad option or a
missing path is one line and exit code 2. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from medseg import __version__
from medseg.cli import _console
from medseg.errors import MedsegError

try:  # recent typer vendors click
    from typer._click.core import Context as _Context
    from typer._click.exceptions import ClickException as _ClickException
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
    from typer._click.exceptions import UsageError as _UsageError
except ImportError:  # pragma: no cover - typer with click as a separate dependency
    from click.core import Context as _Context  # type: ignore[no-redef]
    from click.exceptions import ClickException as _ClickException  # type: ignore[no-redef]
    from click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError  # type: ignore[no-redef]
    from click.exceptions import UsageError as _UsageError  # type: ignore[no-redef]


GLOBAL_FLAGS = frozenset({"--verbose", "-v", "--quiet", "-q", "--debug", "--no-progress"})
"""Options of the root command that may also be written after the subcommand."""


def _is_global(token: str) -> bool:
    return token in GLOBAL_FLAGS or (
        len(token) > 2 and token.startswith("-v") and set(token[1:]) == {"v"}
    )


def _takes_value(command: Any, token: str) -> bool:
    """Whether ``token`` is an option of ``command`` followed by a separate value."""
    name = token.split("=", 1)[0]
    for param in getattr(command, "params", ()):
        if name in getattr(param, "opts", ()) or name in getattr(param, "secondary_opts", ()):
            flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
            return not flag and "=" not in token
    return False


def hoist_global_options(root: Any, args: Sequence[str]) -> list[str]:
    """Move ``-v``, ``-q``, ``--debug`` and ``--no-progress`` given after the subcommand in front.

    Click reads a group's options only before its subcommand; users write them anywhere
    (``medseg predict RUN IN -o OUT --no-progress``). Values of the subcommand's own options
    and everything after ``--`` are left alone, as is a global-looking option a subcommand
    declares itself.
    """
    front: list[str] = []
    rest: list[str] = []
    command, value_next, passthrough = root, False, False
    for token in args:
        own = command is not root and _declares(command, token)
        if passthrough or value_next:
            value_next = False
            rest.append(token)
        elif token == "--":
            passthrough = True
            rest.append(token)
        elif command is not root and _is_global(token) and not own:
            front.append(token)
        else:
            sub = getattr(command, "commands", {}).get(token)
            if sub is not None and not token.startswith("-"):
                command = sub
            elif token.startswith("-"):
                value_next = _takes_value(command, token)
            rest.append(token)
    return front + rest


def _declares(command: Any, token: str) -> bool:
    name = token.split("=", 1)[0]
    return any(name in getattr(p, "opts", ()) for p in getattr(command, "params", ()))


def plain_flags(command: Any) -> None:
    """Show on/off flags (``--dicom-seg``, ``-v``) without a ``<bool>`` / ``<int>`` value in help.

    typer's rich help prints every option's type; a flag takes no value, so printing one makes
    ``--dicom-seg <bool>`` read as if it wanted ``true`` or ``false``.
    """
    context = _Context(command, help_option_names=["-h", "--help"])
    help_option = command.get_help_option(context)
    for param in [*getattr(command, "params", ()), *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


class MedsegGroup(TyperGroup):
    """Root command group that maps exceptions to messages and exit codes."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        plain_flags(self)
        argv = hoist_global_options(self, sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name or "medseg",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except MedsegError as error:
            _console.render_error(error, debug=debug)
            code = error.exit_code
        except _NoArgsIsHelpError as error:
            _console.out.print(error.format_message(), markup=False, highlight=False)
            code = 2
        except _UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "medseg"
            _console.render_usage_error(error.format_message(), command)
            code = 2
        except _ClickException as error:
            _console.render_usage_error(error.format_message(), None)
            code = error.exit_code
        except typer.Abort:
            _console.err.print("[red]Aborted.[/]")
            code = 1
        except Exception as error:  # a bug: show it, never hide it
            _console.render_bug(error)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=MedsegGroup,
    name="medseg",
    help="Medical image segmentation: scan folders -> manifests -> trained 2D/3D models -> "
    "batch segmentation -> metrics -> per-patient reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        _console.out.print(f"medseg {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, show_default=False, help="More log output (debug)."
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of medseg errors.")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bars (logs, clusters).")
    ] = False,
) -> None:
    """medseg command line. Every command has its own --help.

    The options above (-v, -q, --debug, --no-progress) may be given before or after the command.
    """
    ctx.obj = _console.CLIState(debug=debug, progress=not no_progress)
    from medseg.run_folder import dist_info

    worker = not dist_info().is_main  # torchrun: only rank 0 talks
    _console.setup_logging(verbose=verbose, quiet=quiet or worker)


def _register() -> None:
    from medseg.cli import demo, evaluate, manifest, plan, predict, report, run, synth, train

    app.add_typer(synth.app, name="synth")
    app.add_typer(manifest.app, name="manifest")
    for module in (plan, train, predict, evaluate, report, run, demo):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point (``medseg``)."""
    app()
