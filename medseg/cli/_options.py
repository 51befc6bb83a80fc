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

SpacingOpt = Annotated[
    str | None,
    typer.Option(
        "--spacing",
        help="Pixel spacing in mm of 2D image files (PNG/JPEG/TIFF/BMP) without a <name>.json "
        "sidecar: one number or row,column; overrides the files' own resolution.",
    ),
]


def parse_spacing(text: str | None) -> tuple[float, float] | None:
    """``--spacing`` as ``(row, column)`` mm: ``"0.5"`` or ``"0.5,0.25"``.

    Raises:
        ConfigError: not one or two positive numbers.
    """
    from medseg.errors import ConfigError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"--spacing expects mm as 0.5 or 0.5,0.25, got {text!r}") from err
    if len(values) not in (1, 2) or min(values) <= 0:
        raise ConfigError(f"--spacing expects one or two positive numbers, got {text!r}")
    return (values[0], values[-1])
