"""The storage package's imports: no import hidden in a function and no Ray (partitions/ is pure
logic). Cycles, here and in the whole tree, are test_import_graph.py's."""

import ast
from pathlib import Path

import pytest

import rayka.partitions

PACKAGE = Path(rayka.partitions.__file__).parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))


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
