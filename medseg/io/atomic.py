"""Atomic file writes: write to a temporary sibling, then rename over the target.

An interrupted run therefore never leaves a half-written output under its final name, and a rerun
sees either the complete old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg.types import PathLike

PARTIAL_TAG = ".partial-"
"""Marker in temporary file names; files containing it are never final outputs."""


def _full_suffix(path: Path) -> str:
    """``.nii.gz`` for ``a.nii.gz``, ``.json`` for ``a.json``, ``.seg.dcm`` kept whole."""
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1] in {".gz", ".bz2", ".xz"}:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` with the same extension; rename it on success.

    The temporary keeps the extension so writers that choose a format by suffix (nibabel) work.
    The parent folder is created if needed. On any exception the temporary is removed and the
    target is left untouched.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "x.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "x.txt").read_text()
        'done'
    """
    target = Path(path)
    suffix = _full_suffix(target)
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    tmp = target.with_name(f".{stem}{PARTIAL_TAG}{uuid.uuid4().hex[:8]}{suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes (provenance of checkpoints, manifests, reports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def write_json_atomic(path: PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Serialise ``obj`` as strict JSON (NaN -> null) to ``path`` atomically; return the path."""
    return write_text_atomic(path, json.dumps(jsonable(obj), indent=indent, sort_keys=False) + "\n")


def ensure_output_dir(path: PathLike, *, what: str = "output folder") -> Path:
    """Create ``path`` (with parents) and check that files can be written in it.

    Raises:
        ConfigError: the folder cannot be created or written (exit code 2 in the CLI).
    """
    from medseg.errors import ConfigError

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".medseg-write-test{PARTIAL_TAG}{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"cannot write to the {what} {str(folder)!r}: {err.strerror or err}",
            hint="choose a folder you can write to",
        ) from err
    return folder
