"""The shape of the package, checked from its source: no import cycle (imports inside
functions and under ``TYPE_CHECKING`` count too), no import of another package's private
module, and at most 8 modules directly in ``batcher/``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "batcher"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The batcher modules ``path`` imports (``from a import b`` names ``a.b`` when it is
    a module, else ``a``)."""
    found: set[str] = set()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known and name != this}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def private_reaches(edges: dict[str, set[str]]) -> list[str]:
    """Imports of a ``_private`` module from outside the package that holds it."""
    reached = []
    for name, targets in edges.items():
        for target in targets:
            owner = target.rpartition(".")[0]
            private = any(part.startswith("_") for part in target.split("."))
            if private and not (name == owner or name.startswith(owner + ".")):
                reached.append(f"{name} -> {target}")
    return reached


def test_no_import_of_another_packages_private_module() -> None:
    assert private_reaches(graph()) == []


def test_at_most_eight_modules_directly_in_the_package() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 8


def test_the_checks_see_a_cycle_and_a_private_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges = {"p.q": {"p._r", "s._t"}, "p._r": set(), "s._t": set()}
    assert private_reaches(edges) == ["p.q -> s._t"]
    # The graph sees imports inside functions and under TYPE_CHECKING.
    edges = graph()
    assert "batcher.execution" in edges["batcher.api"]  # imported inside run_async
    assert "batcher.read" in edges["batcher.cli.validate"]
