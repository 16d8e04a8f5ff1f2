"""Import direction and cycles, read from the source with ast: every import counts, including those
inside functions and under TYPE_CHECKING (a lazy import is still a dependency).

Rules (the house style): migrate may import comparators and cdc; comparators and cdc never import
migrate, cdc never imports comparators; generic migrate modules never reach the example pipeline
(migrate.examples) and only the CLI commands and the renderers import the demo wiring (migrate.demo);
no two modules of ours import each other, directly or through others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("migrate", "comparators", "cdc")
NEVER_IMPORT_MIGRATE = ("comparators", "cdc")
# The demo wiring names the example on purpose: `dualrun demo` runs it.
DEMO_WIRING = ("migrate.demo", "migrate.commands.demo")
# Who may import the demo wiring: the CLI commands, and the renderers (they render the demo's result).
DEMO_USERS = ("migrate.commands.", "migrate.render")


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages (a package is its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every absolute import in the file, wherever it sits."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (the house style forbids them)"
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (`from a import b` is a.b when that is a module, else a)."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, imported in imported_names(path):
            target = resolve(imported)
            if target is not None and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _reaches(imported: str, package: str) -> bool:
    return imported == package or imported.startswith(package + ".")


def test_comparators_and_cdc_never_import_migrate() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for name, path in modules().items()
        if name.split(".")[0] in NEVER_IMPORT_MIGRATE
        for line, imported in imported_names(path)
        if _reaches(imported, "migrate") or (name.split(".")[0] == "cdc" and _reaches(imported, "comparators"))
    ]
    assert offenders == [], "imports flow migrate -> comparators, cdc only (cdc never comparators):\n" + "\n".join(
        offenders
    )


def test_generic_modules_import_nothing_of_the_examples() -> None:
    offenders = []
    for name, path in modules().items():
        if not name.startswith("migrate") or name.startswith("migrate.examples") or name in DEMO_WIRING:
            continue
        for line, imported in imported_names(path):
            if _reaches(imported, "migrate.examples"):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports the example pipeline ({imported})")
            elif _reaches(imported, "migrate.demo") and not name.startswith(DEMO_USERS):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports the demo wiring ({imported})")
    assert offenders == [], "\n".join(offenders)


def test_no_import_cycles() -> None:
    found = [sorted(c) for c in cycles(graph())]
    assert found == [], f"import cycle(s) between modules: {found}"


def test_the_checks_themselves_catch_a_cycle_and_a_wrong_direction(tmp_path: Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [frozenset({"a", "b", "c"})]
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from migrate.examples.shop_orders import PIPELINE\n    import migrate.demo\n")
    assert list(imported_names(source)) == [(2, "migrate.examples.shop_orders.PIPELINE"), (3, "migrate.demo")]
    assert _reaches("migrate.examples.shop_orders.PIPELINE", "migrate.examples")
    assert not _reaches("migrate.examplesque", "migrate.examples")
