"""Example data for every shipped workflow: one registry, one command (``medseg synth examples``).

Each workflow in ``workflows/`` reads a manifest ``data_manifests/<name>.json``. :data:`EXAMPLES`
says, per manifest name, which synthetic cohort backs it (kind, grid size, patients, file format)
and how the manifest splits it (folds, held-out test patients). :func:`make_examples` writes

* the scans of each example to ``<data_dir>/<name>/`` (``images/``, ``labels/``, ``truth.json``),
  outside the repository (default :func:`default_data_dir`), and
* the manifests to ``<manifests_dir>/<name>.json`` with ``data_root`` set to the absolute path of
  those scans (these manifests are machine-specific and git-ignored; rerun the command on another
  machine).

Scans already written with the same settings are reused (a stamp ``example.json`` records them);
scans are written to ``<name>.partial-examples`` and renamed when complete, so an interrupted run
leaves nothing that looks finished. A new workflow that needs other data adds an entry to
:data:`EXAMPLES` (and a synthesiser to :data:`SYNTHESIZERS` for a new kind of scan).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import ConfigError
from medseg.io.atomic import PARTIAL_TAG, ensure_output_dir, write_json_atomic
from medseg.types import PathLike

logger = logging.getLogger(__name__)
STAMP = "example.json"
DATA_ENV = "MEDSEG_EXAMPLE_DATA"


@dataclass(frozen=True)
class ExampleData:
    """How to make one example data set: a synthetic cohort and the manifest over it."""

    kind: str  # key of SYNTHESIZERS
    size: str  # synthetic grid preset: tiny | small | realistic
    patients: int
    fmt: str  # file format of the scans: dicom | nifti | png
    folds: int  # patient-level cross-validation folds
    test_fraction: float  # share of patients held out as the manifest's test split
    summary: str  # one line for listings
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = ()  # further keyword arguments of the synthesiser

    def stamp(self) -> dict[str, Any]:
        """What identifies the written scans (the manifest split is rebuilt every run)."""
        return {
            "kind": self.kind,
            "size": self.size,
            "patients": self.patients,
            "format": self.fmt,
            "seed": self.seed,
            "options": dict(self.options),
        }


SYNTHESIZERS: dict[str, str] = {"oct": "synth_oct", "ct": "synth_ct"}
"""Kind of scan -> function of :mod:`medseg.synth.api` that writes ``images/``, ``labels/`` and
``truth.json`` into a folder, called as ``f(folder, patients=, fmt=, seed=, size=, **options)``."""


def synthesize(spec: ExampleData, folder: Path) -> object:
    """Write the synthetic cohort of ``spec`` into ``folder`` (returns its truth)."""
    from medseg.synth import api

    write = getattr(api, SYNTHESIZERS[spec.kind])
    return write(
        folder,
        patients=spec.patients,
        fmt=spec.fmt,
        seed=spec.seed,
        size=spec.size,
        **dict(spec.options),
    )


EXAMPLES: dict[str, ExampleData] = {
    "smoke": ExampleData(
        "oct", "tiny", 4, "dicom", folds=2, test_fraction=0.25,
        summary="macular OCT, IRF/SRF: tests and smoke runs",
    ),
    "oct_fluid": ExampleData(
        "oct", "realistic", 10, "dicom", folds=4, test_fraction=0.2,
        summary="macular OCT (Ophthalmic Tomography), IRF/SRF",
    ),
    "ct_lesion": ExampleData(
        "ct", "realistic", 10, "dicom", folds=4, test_fraction=0.2,
        summary="CT series, organ + lesions: 3D U-Net on patches",
    ),
    "ct_lesion_small": ExampleData(
        "ct", "small", 30, "nifti", folds=4, test_fraction=0.2,
        summary="CT volumes, organ + lesions: 3D Mask R-CNN on whole volumes",
    ),
}  # fmt: skip
"""Manifest name (``data_manifests/<name>.json``) -> the data behind it."""


@dataclass
class ExampleResult:
    """What :func:`make_examples` did for one example."""

    name: str
    spec: ExampleData
    scans: Path
    manifest: Path
    cases: int
    test_cases: int
    reused: bool
    seconds: float


def default_data_dir() -> Path:
    """``$MEDSEG_EXAMPLE_DATA``, else ``$XDG_CACHE_HOME/medseg/examples`` (``~/.cache/...``)."""
    chosen = os.environ.get(DATA_ENV)
    if chosen:
        return Path(chosen).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "medseg" / "examples"


def select_examples(
    names: Iterable[str] | None = None, *, size: str | None = None
) -> dict[str, ExampleData]:
    """The registry entries named (all when ``names`` is empty), with ``size`` if given.

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    wanted = list(names or EXAMPLES)
    unknown = [n for n in wanted if n not in EXAMPLES]
    if unknown:
        raise ConfigError(
            f"unknown example data set(s): {', '.join(unknown)}",
            hint=f"choose among {', '.join(EXAMPLES)}",
        )
    return {
        n: EXAMPLES[n] if size is None else dataclasses.replace(EXAMPLES[n], size=size)
        for n in dict.fromkeys(wanted)
    }


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((folder / STAMP).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def write_scans(spec: ExampleData, folder: Path) -> bool:
    """Write the cohort of ``spec`` into ``folder`` unless it is there already; True if reused.

    Raises:
        ConfigError: ``folder`` exists but was not written by this function (never deleted).
    """
    stamp = _read_stamp(folder)
    if stamp == spec.stamp():
        return True
    if folder.exists() and stamp is None:
        raise ConfigError(
            f"{folder} exists and was not written by `medseg synth examples`",
            hint="remove it or choose another --data-dir",
        )
    partial = folder.with_name(f"{folder.name}{PARTIAL_TAG}examples")
    shutil.rmtree(partial, ignore_errors=True)
    synthesize(spec, partial)
    write_json_atomic(partial / STAMP, spec.stamp())
    if folder.exists():
        shutil.rmtree(folder)  # an example written with other settings
    partial.rename(folder)
    return False


def write_manifest(name: str, spec: ExampleData, scans: Path, path: Path) -> tuple[int, int]:
    """Build and save ``path`` over ``scans`` (``data_root`` absolute); (cases, test cases)."""
    from medseg.manifest.build import build_manifest
    from medseg.manifest.schema import save_manifest

    built = build_manifest(
        scans / "images",
        path,
        name=name,
        labels_dir=scans / "labels",
        n_folds=spec.folds,
        seed=spec.seed,
        test_fraction=spec.test_fraction,
    )
    manifest = built.manifest.model_copy(update={"data_root": str((scans / "images").resolve())})
    save_manifest(manifest, path)
    return len(manifest.cases), sum(c.split == "test" for c in manifest.cases)


def make_examples(
    data_dir: PathLike,
    manifests_dir: PathLike,
    *,
    names: Iterable[str] | None = None,
    size: str | None = None,
    on_example: Callable[[ExampleResult], None] | None = None,
) -> list[ExampleResult]:
    """Write the scans and manifests of the named examples (all by default).

    Args:
        data_dir: scans go to ``data_dir/<name>/`` (outside the repository).
        manifests_dir: manifests go to ``manifests_dir/<name>.json`` (the repository's
            ``data_manifests/``, where the shipped workflows look).
        names: registry names (:data:`EXAMPLES`); all when empty.
        size: one grid preset for every example (``tiny`` for tests) instead of each one's own.
        on_example: called after each example is ready.

    Raises:
        ConfigError: an unknown name or size, or an output folder that cannot be written.
    """
    chosen = select_examples(names, size=size)
    data = ensure_output_dir(data_dir, what="example data folder").resolve()
    manifests = ensure_output_dir(manifests_dir, what="manifest folder")
    results = []
    for name, spec in chosen.items():
        start = time.perf_counter()
        reused = write_scans(spec, data / name)
        manifest = manifests / f"{name}.json"
        cases, test = write_manifest(name, spec, data / name, manifest)
        result = ExampleResult(
            name, spec, data / name, manifest, cases, test, reused, time.perf_counter() - start
        )
        logger.info("example %s: %d cases (%d test) -> %s", name, cases, test, manifest)
        results.append(result)
        if on_example is not None:
            on_example(result)
    return results


def manifests_used_by(workflows_dir: PathLike) -> Mapping[str, list[str]]:
    """Manifest file name -> the workflow files in ``workflows_dir`` that read it."""
    from medseg.config.load import load_workflow

    used: dict[str, list[str]] = {}
    for path in sorted(Path(workflows_dir).glob("*.yaml")):
        try:
            manifest = load_workflow(path).manifest
        except ConfigError as err:  # a broken workflow is reported when it is planned
            logger.debug("skipping %s: %s", path, err)
            continue
        used.setdefault(Path(manifest).name, []).append(path.name)
    return used
