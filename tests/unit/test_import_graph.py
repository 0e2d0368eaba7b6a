"""No import cycle anywhere in rayka, counting imports made inside functions too (a cycle
dodged by a late import is still a cycle), and storage never imports from coordination
beyond the shared clock."""

import ast
from pathlib import Path

import pytest

import rayka

ROOT = Path(rayka.__file__).resolve().parent.parent
#: pyproject's package map: package name -> directory
PACKAGES = {"rayka": "rayka", "rayka.cli": "rayka/cli", "rayka.partitions": "partitions",
            "rayka.coordinator": "coordinator", "rayka.actors": "actors", "rayka.clients": "clients"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in (ROOT / folder).glob("*.py"):
            found[package if path.name == "__init__.py" else f"{package}.{path.stem}"] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The rayka modules ``name`` imports anywhere in its file (TYPE_CHECKING blocks left out:
    they never run)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_package_map_is_read_whole():
    assert {"rayka.clients.stubs", "rayka.partitions.log", "rayka.coordinator.groups", "rayka.cli.base",
            "rayka.actors.partition", "rayka.messages"} <= set(MODULES)


def test_no_import_cycle_anywhere_function_level_imports_included():
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for dep in sorted(GRAPH[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)


def test_the_pure_layers_import_no_client_or_actor():
    for name, deps in GRAPH.items():
        if name.startswith(("rayka.partitions", "rayka.coordinator")):
            bad = {d for d in deps if d.startswith(("rayka.clients", "rayka.actors", "rayka.cli"))}
            assert not bad, f"{name} imports {bad}"
