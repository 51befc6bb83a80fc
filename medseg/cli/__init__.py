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
    from typer._click.exceptions import ClickException as _ClickException
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
    from typer._click.exceptions import UsageError as _UsageError
except ImportError:  # pragma: no cover - typer with click as a separate dependency
    from click.exceptions import ClickException as _ClickException  # type: ignore[no-redef]
    from click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError  # type: ignore[no-redef]
    from click.exceptions import UsageError as _UsageError  # type: ignore[no-redef]


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
        argv = list(sys.argv[1:] if args is None else args)
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
        int, typer.Option("--verbose", "-v", count=True, help="More log output (debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of medseg errors.")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bars (logs, clusters).")
    ] = False,
) -> None:
    """medseg command line. Every command has its own --help."""
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
