"""Options shared by several commands (typer ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

PseudonymKeyOpt = Annotated[
    str | None,
    typer.Option("--pseudonym-key", help="Key of the hashes (default: $MEDSEG_PSEUDONYM_KEY)."),
]
