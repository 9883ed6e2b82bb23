"""The package's shape: layers import downward only, and no import cycle exists anywhere in
``zoo/``, counting imports inside functions (``lint-imports`` checks the layer contract)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(zoo.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Every zoo module -> the zoo modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from zoo.x import y`` imports the submodule zoo.x.y when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_zoo_has_no_import_cycle_even_through_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 40  # it saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_few_modules_sit_directly_in_zoo():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= 8, top


def test_nothing_imports_the_cli():
    graph = import_graph()
    users = {m for m, deps in graph.items() if not m.startswith("zoo.cli") for d in deps}
    offenders = sorted(
        m for m in users if m != "zoo.__main__" and any(d.startswith("zoo.cli") for d in graph[m])
    )
    assert offenders == []


def test_the_layer_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    run = subprocess.run([str(lint)], cwd=ROOT.parent, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
