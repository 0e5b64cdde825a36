"""The package's import graph (docs/architecture.md): one-way rooms.

Every module under ``integrations/`` is parsed (not imported). Its imports of the
package's own modules, relative ones resolved and ``if TYPE_CHECKING:`` blocks left
out, must (a) form no cycle, (b) sit at module level (only ``apps.py``'s ``ready()``
may import late), and (c) point to the module's own layer or one below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "integrations"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Module prefix -> layer (docs/architecture.md). The longest matching prefix wins; a
# module may import only modules of its own layer or below.
LAYERS: dict[str, int] = {
    "integrations": 0,  # the package's __init__
    "integrations.exceptions": 0,
    "integrations.signals": 0,
    "integrations.settings": 1,
    "integrations.crypto": 2,
    "integrations.redaction": 2,
    "integrations.urlpaths": 2,
    "integrations.certificates": 2,  # client certificates: parsed by tokens/ and http/
    "integrations.tokens": 3,
    "integrations.signers": 3,
    "integrations.validation": 4,
    "integrations.accounts": 4,  # account option rules, beside validation
    "integrations.destinations": 4,  # where a credential may be sent, beside validation
    "integrations.keypairs": 4,
    "integrations.models": 5,
    "integrations.http": 6,
    "integrations.telemetry": 6,
    "integrations.fanout": 7,  # threads and forked worker processes for many calls
    "integrations.calllog": 7,
    "integrations.rotation": 7,
    "integrations.discovery_cache": 7,  # issuer metadata read on save, through http
    "integrations.signingkeys": 7,  # an integration's keys: rollover and JWKS contents
    "integrations.testcalls": 8,
    "integrations.health": 8,
    "integrations.alerts": 8,  # health changes sent out: webhook and e-mail tasks
    "integrations.services": 9,
    "integrations.tasks": 10,
    "integrations.forms": 10,
    "integrations.configfile": 10,
    "integrations.account_import": 10,
    "integrations.github_sync": 10,
    "integrations.checks": 10,
    "integrations.receivers": 10,
    "integrations.charts": 10,
    "integrations.admin": 11,
    "integrations.views": 11,
    "integrations.urls": 11,
    "integrations.jwks": 11,  # the JWKS view
    "integrations.management": 11,
    "integrations.migrations": 11,
    "integrations.apps": 11,
}
# Where a late import of the package's own modules is allowed: (module, function).
LATE_IMPORTS_ALLOWED = {("integrations.apps", "ready")}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    function: str | None  # the enclosing function, None at module level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def resolve(name: str, path: Path, node: ast.ImportFrom, known: set[str]) -> list[str]:
    """The own modules an ``import from`` names: the module itself, or for
    ``from pkg import sub`` the submodules it names."""
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package.pop()
        base_parts = package[: len(package) - node.level + 1]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base != PACKAGE and not base.startswith(PACKAGE + "."):
        return []
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    named = [] if submodules and len(submodules) == len(node.names) else [base]
    return named + submodules


def walk(
    tree: ast.AST, function: str | None = None
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
    """Import statements with their enclosing function, skipping TYPE_CHECKING blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from walk(ast.Module(body=[child], type_ignores=[]), function)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, function
        inner = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else function
        yield from walk(node, inner)


def own_imports() -> list[Import]:
    found = modules()
    known = set(found)
    imports: list[Import] = []
    for name, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, function in walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
            else:
                targets = resolve(name, path, node, known)
            imports.extend(
                Import(name, target, node.lineno, function)
                for target in targets
                if target != name
            )
    return imports


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends on the same node, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> int | None:
    # The package's own __init__ is matched exactly, not as everyone's prefix.
    prefixes = [p for p in LAYERS if module == p or (p != PACKAGE and module.startswith(p + "."))]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def test_the_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for edge in own_imports():
        if edge.function is None:
            graph.setdefault(edge.source, set()).add(edge.target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_function_level_imports_of_own_modules():
    late = [
        f"{edge.source}:{edge.line} imports {edge.target} inside {edge.function}()"
        for edge in own_imports()
        if edge.function is not None and (edge.source, edge.function) not in LATE_IMPORTS_ALLOWED
    ]
    assert late == [], "import at module level instead:\n" + "\n".join(late)


def test_every_module_has_a_layer():
    unknown = [name for name in modules() if layer(name) is None]
    assert unknown == [], (
        f"add these modules to LAYERS in {Path(__file__).name} (and docs/architecture.md): "
        + ", ".join(unknown)
    )


def test_imports_point_down_the_layers():
    upward = []
    for edge in own_imports():
        source, target = layer(edge.source), layer(edge.target)
        if target is None:
            upward.append(f"{edge.source}:{edge.line}: {edge.target} has no layer: add it")
        elif source is not None and target > source:
            upward.append(
                f"{edge.source} (L{source}):{edge.line} imports {edge.target} (L{target})"
            )
    assert upward == [], "imports against the layer table:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"a"}}, ["a", "a"]),
        ({"x": {"y"}, "y": {"z"}, "z": {"y"}}, ["y", "z", "y"]),
    ],
)
def test_the_cycle_finder_finds_an_injected_cycle(graph, cycle):
    """The checker itself: a synthetic graph with a cycle is reported, one without is not."""
    assert find_cycle(graph) == cycle


def test_the_parser_sees_late_and_type_checking_imports(tmp_path):
    """The checker itself: a function-level import is seen, a TYPE_CHECKING one is not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .models import Integration\n"
        "def f():\n    from .services import get_session\n"
    )
    found = [(node.lineno, function) for node, function in walk(ast.parse(source))]
    assert found == [(1, None), (5, "f")]
