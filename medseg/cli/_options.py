"""Options shared by several commands (typer ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

PseudonymKeyOpt = Annotated[
    str | None,
    typer.Option("--pseudonym-key", help="Key of the hashes (default: $MEDSEG_PSEUDONYM_KEY)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
FoldOpt = Annotated[
    int, typer.Option("--fold", min=0, help="Cross-validation fold to validate on (held out).")
]
