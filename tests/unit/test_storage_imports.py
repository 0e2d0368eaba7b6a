"""The storage package's imports: no cycle between its modules, no import hidden in a function
(to dodge one), and no Ray (partitions/ is pure logic)."""

import ast
from pathlib import Path

import pytest

import rayka.partitions

PACKAGE = Path(rayka.partitions.__file__).parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))


def _module_imports(tree: ast.Module) -> set[str]:
    """Sibling modules imported at module level (TYPE_CHECKING blocks included)."""
    found = set()
    for node in tree.body:
        for n in node.body if isinstance(node, ast.If) else [node]:
            if isinstance(n, ast.ImportFrom) and n.level == 1:
                found.update([n.module.split(".")[0]] if n.module else [a.name for a in n.names])
            elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("rayka.partitions."):
                found.add(n.module.split(".")[2])
    return {m for m in found if (PACKAGE / f"{m}.py").exists()}


def test_the_storage_modules_import_each_other_without_a_cycle():
    graph = {p.stem: _module_imports(ast.parse(p.read_text())) for p in MODULES}
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_level_import_and_no_ray(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n == "ray" or n.startswith("ray.") for n in names), f"{path.name} imports Ray"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            assert not inner, f"{path.name}:{inner[0].lineno if inner else 0}: import inside {node.name}()"
