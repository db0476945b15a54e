"""The architecture as rules on the import graph of `llmroute/` (docs/architecture.md draws it).

Every import counts: module level, inside functions, and under `if TYPE_CHECKING:` — a type-only
import still ties two parts together. The graph is read from the source with `ast`, so the test
sees exactly what a reader sees.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llmroute"

VOCABULARY = {
    "llmroute.errors",
    "llmroute.request",
    "llmroute.usage",
    "llmroute.catalog",
    "llmroute.hinting",
    "llmroute.tokens",
    "llmroute.target",
    "llmroute._textchecks",
}
"""The shared words: every other part may use them; they use nothing above themselves."""

MONEY = ("llmroute.money",)
"""The ledger, budgets, prices, reports, what-if, estimates and stores."""

ROUTING_POLICIES = ("llmroute.policy", "llmroute.policies")
ROUTING = "llmroute.routing"
"""The routing core: configuration, engine, balancing, breakers, health and the attempt loop."""
ADAPTERS = ("llmroute.providers",)
SDKS = ("openai", "anthropic", "httpx", "httpx2", "aiohttp")
TOOLS = ("llmroute.testing", "llmroute.cli", "llmroute._cli_output", "llmroute._cli_ledger", "llmroute.demo")
"""The emulator, the command line and the demo: built on the library, never imported by it."""


def _modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for path in (ROOT / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterable[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        yield sub if sub in MODULES else target  # `from . import x` names the submodule x


def _graph() -> dict[str, set[str]]:
    """module -> the modules it imports (llmroute modules by full name; others by top-level name)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, (path, is_package) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _targets(module, is_package, node):
                if name == PACKAGE or not name.startswith(f"{PACKAGE}."):
                    if name != PACKAGE:
                        graph[module].add(name.split(".")[0])
                    continue
                target = name
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


GRAPH = _graph()


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    # a broken reader would pass every rule below: check it sees edges we know are there
    assert "llmroute.errors" in GRAPH["llmroute.routing.core"]
    assert "openai" in GRAPH["llmroute.errors"]
    assert "llmroute.testing._engine" in GRAPH["llmroute.testing._core"]


def test_cycles_are_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(VOCABULARY))
def test_vocabulary_imports_nothing_above_it(module: str) -> None:
    above = {t for t in GRAPH[module] if t.startswith(f"{PACKAGE}.") and t not in VOCABULARY}
    assert above == set(), f"{module} imports {sorted(above)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, (*MONEY, *ROUTING_POLICIES))))
def test_policies_and_money_never_touch_adapters_or_sdks(module: str) -> None:
    bad = {
        t for t in GRAPH[module] if _under(t, (*ADAPTERS, *SDKS, "llmroute.router", "llmroute.routing.core"))
    }
    assert bad == set(), f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, MONEY)))
def test_money_does_not_depend_on_routing(module: str) -> None:
    bad = {
        t
        for t in GRAPH[module]
        if _under(t, (*ROUTING_POLICIES, "llmroute.routing.engine", "llmroute.routing.balance"))
    }
    assert bad == set(), f"{module} imports {sorted(bad)}"


def test_the_engine_does_no_io() -> None:
    engine = GRAPH["llmroute.routing.engine"]
    bad = {t for t in engine if _under(t, (*ADAPTERS, *SDKS, "socket", "sqlite3", "llmroute.money.store"))}
    assert bad == set(), f"llmroute.routing.engine imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _under(m, TOOLS)))
def test_the_library_never_imports_its_tools(module: str) -> None:
    bad = {t for t in GRAPH[module] if _under(t, TOOLS)}
    assert bad == set(), f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_800_lines(module: str) -> None:
    path, _ = MODULES[module]
    lines = len(path.read_text().splitlines())
    assert lines <= 800, f"{path.relative_to(ROOT)} has {lines} lines"


SURFACE = (
    "llmroute.router",
    "llmroute.resources",
    "llmroute.stream",
    "llmroute.legacy",
    "llmroute._sdkclient",
)
"""The drop-in surface: the OpenAI-shaped clients built on the routing core."""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, (ROUTING, *MONEY))))
def test_routing_and_money_never_import_the_surface(module: str) -> None:
    bad = {t for t in GRAPH[module] if _under(t, SURFACE)}
    assert bad == set(), f"{module} imports {sorted(bad)}"
