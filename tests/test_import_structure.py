"""The package's modules import each other without circles, counting imports inside functions.

A function-local import is how a circle is usually hidden (it defers the failure, it does not remove the
dependency), and an ``if TYPE_CHECKING:`` import still ties the two modules' designs together, so every
``import`` statement counts. A module importing its own package's ``__init__`` for a lazily exported name is
a circle too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mendlight

PACKAGE_ROOT = Path(mendlight.__file__).parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


MODULES = _module_names()


def _owner(name: str) -> str | None:
    """The package module ``name`` is, or lies in (``mendlight.x.y.func`` → ``mendlight.x.y``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module, self.path, self.found = module, path, set()

    def _add(self, name: str) -> None:
        owner = _owner(name)
        if owner is not None and owner != self.module:
            self.found.add(owner)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module if self.path.name == "__init__.py" else self.module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in MODULES else base)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere."""
    graph = {}
    for module, path in MODULES.items():
        visitor = _Imports(module, path)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[module] = visitor.found
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_the_circle_finder_finds_a_circle_and_none_where_there_is_none():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_function_local_imports():
    graph = import_graph()
    assert "mendlight.api" in graph["mendlight"]  # the lazy export in mendlight.__getattr__
    assert "mendlight.table_command" in graph["mendlight.cli"]  # imported inside main()


def test_no_module_of_the_package_imports_itself_in_a_circle():
    circles = import_circles(import_graph())
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in circles)
