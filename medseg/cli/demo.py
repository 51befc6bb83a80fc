"""``medseg demo``: the whole toolkit end to end on synthetic OCT."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._stub import not_available


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Demo folder.")] = Path("demo_out"),
    quick: Annotated[bool, typer.Option("--quick", help="About a minute (smoke test).")] = False,
) -> None:
    """Synthetic OCT cohort -> manifest -> train -> predict -> evaluate -> reports."""
    not_available("demo")
