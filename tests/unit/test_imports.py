"""The library's import graph: no cycle among rdmt_core's modules, and configuration and monitors stay light.

(a) Every import statement of every module of rdmt_core, at the top or inside a function, is read
from the source (``if TYPE_CHECKING:`` blocks left out); the graph of imports among rdmt_core's
modules must have no cycle. A module's implicit import of its own parent package is not an edge.
(b) ``import rdmt_core.config, rdmt_core.monitors`` in a fresh interpreter loads none of the heavy
dependencies: a command that prints help or runs SQL must not pay for them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rdmt_core

PACKAGE = Path(next(iter(rdmt_core.__path__)))  # a namespace package: no __init__.py
HEAVY = ("photutils", "matplotlib", "roman_datamodels", "quixstreams")


def _modules() -> dict[str, Path]:
    """Every module of rdmt_core by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("rdmt_core", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Edges module -> rdmt_core modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from X import y` imports the module X.y when there is one, else X
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rpartition(".")[0]  # `import a.b.c` of a name in a module: its module
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return out


def test_the_graph_sees_imports_inside_functions_and_not_type_checking_blocks():
    graph = import_graph()
    assert "rdmt_core.monitors.dark.metrics" in graph["rdmt_core.monitors.dark.monitor"]  # inside compute
    assert "rdmt_core.data_access" not in graph["rdmt_core.monitors.astrometry.context"]  # TYPE_CHECKING only
    assert "rdmt_core.monitors" not in graph["rdmt_core.monitors.base"]  # its own parent package is no edge


def test_no_import_cycle_among_the_library_modules():
    found = cycles(import_graph())
    assert not found, "import cycles among rdmt_core modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_configuration_and_monitors_import_no_heavy_dependency():
    code = (
        f"import sys, rdmt_core.config, rdmt_core.monitors\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", f"loaded by import rdmt_core.config, rdmt_core.monitors: {proc.stdout.strip()}"


def test_the_dq_flags_loaded_alone_are_roman_datamodels_own():
    from roman_datamodels import dqflags

    from rdmt_core.measure.dq import pixel_flags

    def flags(enum) -> dict[str, int]:
        return {name: int(value) for name, value in enum.__members__.items()}

    assert flags(pixel_flags()) == flags(dqflags.pixel)
