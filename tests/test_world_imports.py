"""ActorWorld reads bottom-up: no world module imports, at any depth of its code, one that imports it back."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import wildactor.world

WORLD_DIR = Path(wildactor.world.__file__).resolve().parent
PACKAGE = "wildactor.world"


def _world_modules() -> list[str]:
    return sorted(p.stem for p in WORLD_DIR.glob("*.py") if p.stem != "__init__")


def _imports_of(path: Path) -> set[str]:
    """World modules a file imports anywhere (module level and inside functions); the package itself counts
    as "__init__" (it imports every module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == PACKAGE:
                found.update(
                    a.name if (WORLD_DIR / f"{a.name}.py").is_file() else "__init__" for a in node.names
                )
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE:
                    found.add("__init__")
                elif alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.split(".")[2])
    return found


def world_import_graph() -> dict[str, set[str]]:
    """module -> the world modules it imports (lazy imports included: a cycle through a function is one too)."""
    return {name: _imports_of(WORLD_DIR / f"{name}.py") - {name} for name in _world_modules()}


def test_world_import_graph_is_acyclic():
    graph = world_import_graph()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import circle in {PACKAGE}: {' -> '.join(exc.args[1])}")
    assert set(order) >= set(_world_modules())


def test_no_world_module_imports_the_package_itself():
    """`from wildactor.world import X` inside the world would depend on every module (the package imports all)."""
    offenders = {m: deps for m, deps in world_import_graph().items() if "__init__" in deps}
    assert not offenders


def test_the_checker_sees_a_lazy_import_circle(tmp_path):
    """The graph check fails on a circle that exists only inside a function body."""
    a = tmp_path / "a.py"
    a.write_text(
        "def f():\n    from wildactor.world.prompts import describe_actor\n    return describe_actor\n"
    )
    assert _imports_of(a) == {"prompts"}
    graph = {**world_import_graph(), "actors": world_import_graph()["actors"] | _imports_of(a)}
    with pytest.raises(CycleError):
        list(TopologicalSorter(graph).static_order())


def test_each_world_module_imports_alone_in_dependency_order():
    """A fresh interpreter, with the package's __init__ (which imports everything) bypassed, imports the
    modules bottom-up; importing each one loads no world module above it."""
    order = [m for m in TopologicalSorter(world_import_graph()).static_order() if m != "__init__"]
    script = f"""
import importlib, sys, types
pkg = types.ModuleType({PACKAGE!r})
pkg.__path__ = [{str(WORLD_DIR)!r}]
sys.modules[{PACKAGE!r}] = pkg
order = {order!r}
for k, name in enumerate(order):
    importlib.import_module({PACKAGE!r} + "." + name)
    loaded = {{m.split(".")[2] for m in sys.modules if m.startswith({PACKAGE!r} + ".")}}
    above = loaded - set(order[: k + 1])
    if above:
        sys.exit(f"importing {{name}} loaded {{sorted(above)}}")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
