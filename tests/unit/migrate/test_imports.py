"""Import direction: generic modules never reach the example pipeline, and the packages keep their edges.

Every import counts, including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# The demo wiring names the example on purpose: `dualrun demo` runs it.
DEMO_WIRING = {"migrate/demo.py", "migrate/commands/demo.py"}
# Who may import the demo wiring: the CLI commands, and the renderers (they render the demo's result).
DEMO_USERS = ("migrate/commands/", "migrate/render.py")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute names, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def reaches(names: set[str], package: str) -> list[str]:
    return sorted(n for n in names if n == package or n.startswith(package + "."))


def test_the_walk_sees_function_level_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from migrate.examples.shop_orders import PIPELINE\n    import migrate.demo\n")
    assert reaches(imports(probe), "migrate.examples") == [
        "migrate.examples.shop_orders",
        "migrate.examples.shop_orders.PIPELINE",
    ]
    assert reaches(imports(probe), "migrate.demo") == ["migrate.demo"]


@pytest.mark.parametrize("path", modules("migrate"), ids=relative)
def test_generic_modules_import_nothing_of_the_examples(path: Path) -> None:
    name = relative(path)
    if name.startswith("migrate/examples/") or name in DEMO_WIRING:
        return
    assert reaches(imports(path), "migrate.examples") == [], f"{name} imports the example pipeline"
    if not name.startswith(DEMO_USERS):
        assert reaches(imports(path), "migrate.demo") == [], f"{name} imports the demo wiring"


@pytest.mark.parametrize("path", modules("comparators") + modules("cdc"), ids=relative)
def test_comparators_and_cdc_never_import_migrate(path: Path) -> None:
    names = imports(path)
    assert reaches(names, "migrate") == [], f"{relative(path)} imports migrate"
    if relative(path).startswith("cdc/"):
        assert reaches(names, "comparators") == [], f"{relative(path)} imports comparators"
