"""The library stays readable: short modules, short functions, imports in one direction.

Limits from DEVELOPERS.md: no module over 700 lines, no function body over 80 lines
(docstring aside), and no import cycle between the library's modules, function-level imports
included (structures → neighbours → descriptors → models → … → active learning).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nnptutor"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        trees[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return trees


def _body_lines(function: ast.FunctionDef) -> int:
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("nnptutor")}


def test_no_module_is_too_long():
    long = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_body_is_too_long():
    long = [
        f"{module}.{node.name}: {_body_lines(node)} lines"
        for module, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"function bodies over {MAX_FUNCTION_LINES} lines: {long}"


def test_imports_run_one_way():
    graph = {module: _imports(tree) - {module} for module, tree in _modules().items()}

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in reachable(b)})
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"
