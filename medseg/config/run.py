"""Planning as a stage: workflow file (+ overrides) -> run folder with the frozen plan.

The run folder gets ``fingerprint.json`` and ``resolved_workflow.yaml``. A plan is reused while
the workflow (after overrides) and the manifest are unchanged (their hashes are in the plan).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.config.load import load_resolved, load_workflow, manifest_path, save_resolved
from medseg.config.plan import plan_workflow
from medseg.config.schema import ResolvedWorkflow, WorkflowConfig
from medseg.io.atomic import file_sha256
from medseg.manifest.fingerprint import Fingerprint, compute_fingerprint
from medseg.manifest.schema import Manifest, load_manifest
from medseg.types import PathLike

logger = logging.getLogger(__name__)
FINGERPRINT, RESOLVED = "fingerprint.json", "resolved_workflow.yaml"


@dataclass
class PlannedRun:
    run_dir: Path
    resolved: ResolvedWorkflow
    manifest: Manifest
    reused: bool


def default_run_dir(config: WorkflowConfig) -> Path:
    """``runs/<workflow name>`` under the current folder."""
    return Path("runs") / config.name


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def workflow_hash(config: WorkflowConfig) -> str:
    return _sha256_text(json.dumps(config.model_dump(mode="json"), sort_keys=True))


def manifest_hash(path: Path) -> str:
    return file_sha256(path)


def _up_to_date(
    resolved_file: Path, config: WorkflowConfig, manifest_file: Path
) -> ResolvedWorkflow | None:
    if not resolved_file.is_file():
        return None
    try:
        resolved = load_resolved(resolved_file)
    except Exception:  # an unreadable old plan is simply replaced
        return None
    if resolved.plan.workflow_sha256 == workflow_hash(
        config
    ) and resolved.plan.manifest_sha256 == manifest_hash(manifest_file):
        return resolved
    return None


def plan_run(
    workflow_file: PathLike,
    *,
    overrides: Sequence[str] = (),
    run_dir: PathLike | None = None,
    force: bool = False,
    write: bool = True,
) -> PlannedRun:
    """Load the workflow and its manifest, then reuse or (re)compute the plan in ``run_dir``.

    ``write=False`` plans in memory only (DDP ranks other than 0: same inputs, same plan).
    """
    config = load_workflow(workflow_file, overrides)
    manifest_file = manifest_path(workflow_file, config)
    manifest = load_manifest(manifest_file)
    folder = Path(run_dir) if run_dir is not None else default_run_dir(config)
    existing = None if force else _up_to_date(folder / RESOLVED, config, manifest_file)
    if existing is not None:
        logger.info("plan in %s is up to date", folder)
        return PlannedRun(folder, existing, manifest, reused=True)
    fingerprint = compute_fingerprint(manifest)
    resolved = plan_workflow(
        config,
        fingerprint,
        manifest,
        workflow_sha256=workflow_hash(config),
        manifest_sha256=manifest_hash(manifest_file),
    )
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        fingerprint.save(folder / FINGERPRINT)
        save_resolved(resolved, folder / RESOLVED)
        logger.info("planned %s into %s", config.name, folder)
    return PlannedRun(folder, resolved, manifest, reused=False)


def load_fingerprint(run_dir: PathLike) -> Fingerprint:
    return Fingerprint.load(Path(run_dir) / FINGERPRINT)
