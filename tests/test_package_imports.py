"""The packages' modules import each other at the top only, and without a cycle: the road a
reader follows from the file layout is the one the code takes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _graph(package: str) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the package's modules it imports at the top; and the imports inside functions
    (but the compiled extension's, loaded where it is built: copslp._kernels_numpy.load_kernels)."""
    graph, inside = {}, []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        graph[name] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            if node in tree.body:
                graph[name].add(target)
            elif target != f"{package}" or [alias.name for alias in node.names] != ["_kernels"]:
                inside.append(f"{name}: from {'.' * node.level}{node.module or ''} import ...")
    return graph, inside


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["copslp", "torch_adapter"])
def test_modules_import_each_other_at_the_top_without_a_cycle(package):
    graph, inside = _graph(package)
    assert not inside, f"imports of the package inside functions: {inside}"
    cycle = _cycle({name: {t for t in targets if t != name} for name, targets in graph.items()})
    assert cycle is None, f"an import cycle: {' -> '.join(cycle)}"
