"""House rule: no function body in ``medseg/`` over 60 lines (the signature is not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_BODY_LINES = 60
PACKAGE = Path(__file__).resolve().parents[1] / "medseg"


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement of the body (docstring included) to the last."""
    return (node.end_lineno or node.lineno) - node.body[0].lineno + 1


def long_functions(root: Path, limit: int = MAX_BODY_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if is_function and body_lines(node) > limit:
                where = path.relative_to(root.parent)
                found.append(f"{where}:{node.lineno} {node.name} ({body_lines(node)} lines)")
    return found


def test_no_function_body_over_60_lines() -> None:
    assert long_functions(PACKAGE) == []


def test_the_rule_counts_bodies_not_signatures(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    params = "".join(f"    a{i}: int,\n" for i in range(30))
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    (package / "ok.py").write_text(f"def f(\n{params}) -> None:\n{body}")
    (package / "long.py").write_text(f"def g() -> None:\n{body}    return None\n")
    assert long_functions(package) == ["pkg/long.py:1 g (61 lines)"]
