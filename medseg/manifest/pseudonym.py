"""Pseudonymous patient ids: a keyed hash replaces the DICOM PatientID everywhere downstream.

``P`` + the first 10 hex digits of HMAC-SHA256(key, PatientID): stable for a key (so later
builds and predictions agree), not reversible without the key. The key comes from the option or
the ``MEDSEG_PSEUDONYM_KEY`` environment variable (the only variable medseg reads). The table
mapping original to pseudonymous ids is written next to the output; it identifies patients and
must be stored like the source data.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
from collections.abc import Iterable
from pathlib import Path

from medseg.errors import ConfigError
from medseg.io.atomic import write_text_atomic
from medseg.types import PathLike

KEY_VARIABLE = "MEDSEG_PSEUDONYM_KEY"
TABLE_SUFFIX = ".pseudonyms.csv"


def resolve_key(key: str | None) -> str:
    """The key to use: the option, else ``MEDSEG_PSEUDONYM_KEY``.

    Raises:
        ConfigError: neither is set (pseudonyms must be reproducible, so no random default).
    """
    value = key or os.environ.get(KEY_VARIABLE)
    if not value:
        raise ConfigError(
            "pseudonymisation needs a key", hint=f"pass --pseudonym-key or set {KEY_VARIABLE}"
        )
    return value


def pseudonym(patient_id: str, key: str) -> str:
    """``P`` + 10 hex digits of HMAC-SHA256(key, patient_id).

    Example:
        >>> pseudonym("12345", "secret")
        'PF88C7EBE47'
    """
    digest = hmac.new(key.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
    return "P" + digest[:10].upper()


def pseudonymous_case_id(case_id: str, patient_id: str, new_patient_id: str) -> str:
    """Replace the patient prefix of a case id (DICOM case ids start with the patient id)."""
    if case_id == patient_id or case_id.startswith(f"{patient_id}_"):
        return new_patient_id + case_id[len(patient_id) :]
    return case_id


def write_table(rows: Iterable[tuple[str, str, str, str]], path: PathLike) -> Path:
    """CSV ``patient_id,pseudonym,case_id,pseudonymous_case_id`` (contains identifiers!)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["patient_id", "pseudonym", "case_id", "pseudonymous_case_id"])
    writer.writerows(sorted(set(rows)))
    return write_text_atomic(path, buffer.getvalue())
