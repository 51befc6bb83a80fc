"""Small text helpers shared by the CLI, logs and reports."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` and the noun in the right number.

    Example:
        >>> plural(1, "patient"), plural(2, "lesion"), plural(0, "study", "studies")
        ('1 patient', '2 lesions', '0 studies')
    """
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {word}"
