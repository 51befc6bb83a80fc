"""Load workflow YAML with ``--set key.path=value`` overrides into a validated config.

Every problem becomes one line of a :class:`~medseg.errors.ConfigError` naming the file and the
YAML path, e.g. ``smoke.yaml: train.epochz: unknown key (did you mean 'epochs'?)``.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from medseg.config.schema import ResolvedWorkflow, WorkflowConfig
from medseg.errors import ConfigError
from medseg.io.atomic import write_text_atomic
from medseg.types import PathLike

PATH_KEYS = ("manifest",)
"""Workflow keys holding a path: relative to the YAML file in it, to the current folder in --set."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read workflow: {err.strerror or err}", path=path) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path.name}: invalid YAML{where}: {getattr(err, 'problem', err)}"
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a mapping of sections at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` entries (value parsed as YAML, so ``[1, 2]`` and ``0.5`` work)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the section at ``loc`` (for "did you mean")."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _field_loc(model: type[BaseModel], loc: Sequence[Any]) -> list[Any]:
    """``loc`` cut where it leaves the schema's fields (pydantic adds union-branch names)."""
    out: list[Any] = []
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if isinstance(part, int) or fields is None:
            if not isinstance(part, int):
                break
            out.append(part)
            continue
        if part not in fields:
            out.append(part)  # unknown key: keep it, the message is about it
            break
        out.append(part)
        annotation = fields[part].annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return out


def _describe(messages: list[str]) -> str:
    auto = "Input should be 'auto'"
    rest = [m for m in messages if m != auto]
    text = " / ".join(dict.fromkeys(rest)) if rest else "expected 'auto'"
    return text + (" (or 'auto')" if auto in messages and rest else "")


def format_errors(err: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line per problem: ``<source>: <yaml.path>: <message>``."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for e in err.errors():
        loc = _field_loc(model, e["loc"])
        grouped.setdefault(".".join(str(p) for p in loc) or "(top level)", []).append(
            {**e, "loc": loc}
        )
    lines = []
    for path, errors in grouped.items():
        first = errors[0]
        if first["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, first["loc"])
            close = difflib.get_close_matches(str(first["loc"][-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if not close and allowed:
                hint = f" (allowed: {', '.join(allowed)})"
            lines.append(f"{source}: {path}: unknown key{hint}")
        elif first["type"] == "missing":
            lines.append(f"{source}: {path}: required key is missing")
        elif first["type"] == "value_error" and not first["loc"]:  # cross-field rules
            lines.extend(f"{source}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
        else:
            got = first.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"{source}: {path}: {_describe([e['msg'] for e in errors])}{shown}")
    return "\n".join(lines)


def absolute_path_overrides(overrides: Sequence[str]) -> list[str]:
    """``--set manifest=REL`` made absolute against the current folder.

    A path in the YAML file is relative to that file; a path typed on the command line is
    relative to where it was typed. Other overrides pass unchanged.
    """
    out = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if sep and key.strip() in PATH_KEYS:
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            if isinstance(value, str) and value:
                item = f"{key}={json.dumps(os.path.abspath(Path(value).expanduser()))}"
        out.append(item)
    return out


def load_workflow(path: PathLike, overrides: Sequence[str] = ()) -> WorkflowConfig:
    """Read, override and validate a workflow YAML file.

    A relative path in an override (``manifest=...``) is relative to the current folder; in the
    file, to the file's folder.

    Raises:
        ConfigError: unreadable YAML or invalid values, one line per problem.
    """
    location = Path(path)
    data = apply_overrides(_read_yaml(location), absolute_path_overrides(overrides))
    try:
        return WorkflowConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, WorkflowConfig, location.name)) from err


def manifest_path(workflow_file: PathLike, config: WorkflowConfig) -> Path:
    """The manifest a workflow points at (a relative path: to the workflow file's folder).

    Overrides were made absolute by :func:`load_workflow`, so only paths from the file are relative.
    """
    path = Path(config.manifest)
    return path if path.is_absolute() else (Path(workflow_file).resolve().parent / path)


def save_resolved(resolved: ResolvedWorkflow, path: PathLike) -> Path:
    """Write ``resolved_workflow.yaml`` atomically (plain YAML, key order kept)."""
    data = resolved.model_dump(mode="json")
    text = (
        "# written by `medseg plan`: every auto value resolved; edit the workflow, not this file\n"
    )
    return write_text_atomic(
        path, text + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    )


def load_resolved(path: PathLike) -> ResolvedWorkflow:
    """Read ``resolved_workflow.yaml`` (ConfigError naming the field when invalid)."""
    location = Path(path)
    data = _read_yaml(location)
    try:
        return ResolvedWorkflow.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, ResolvedWorkflow, location.name)) from err
