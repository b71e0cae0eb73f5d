"""Data flows one way: flows -> tasks -> operators. operators/ and storage/ import neither tasks, flows nor
Prefect (each operator is plain Python, testable alone); tasks/ does not import flows."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"operators": ("infuse.tasks", "infuse.flows", "prefect"),
             "storage": ("infuse.tasks", "infuse.flows", "prefect"),
             "tasks": ("infuse.flows",)}


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_go_one_way(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    bad = [f"{f.relative_to(ROOT)}:{line} imports {mod}" for f in files for line, mod in imported(f)
           if any(mod == p or mod.startswith(p + ".") for p in FORBIDDEN[folder])]
    assert bad == []
