"""The layering of docs/ARCHITECTURE.md, enforced: a module imports only from its own layer or below (imports
inside functions count too), and no two modules import each other, directly or in a circle."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module belongs to the longest prefix listed; keep in step with docs/ARCHITECTURE.md.
LAYERS = [
    ["seektune", "seektune.errors", "seektune.schema", "seektune.atomic", "seektune.text",
     "seektune.allocator"],
    ["seektune.runtime", "seektune.config", "seektune.method_config", "seektune.objective_config"],
    ["seektune.data", "seektune.metrics"],
    ["seektune.models"],
    ["seektune.artifacts"],
    ["seektune.train", "seektune.inference"],
    ["seektune.evaluate", "seektune.demo", "seektune.data.pipeline", "seektune.serve", "seektune.compress",
     "seektune.recipe", "seektune.plan", "seektune.ui"],
    ["seektune.cli"],
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "seektune").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _layer(module: str) -> int:
    best = max((p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        out |= {n for n in names if n in modules}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def test_every_module_has_a_layer():
    assert all(_layer(m) >= 0 for m in _modules())


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in _graph().items() for d in sorted(deps) if _layer(d) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    graph, cycles = _graph(), []

    def visit(node, stack, on_stack, done):
        on_stack.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack and nxt != "seektune":  # the package root is imported as a name holder only
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack, on_stack, done)
        stack.pop()
        on_stack.discard(node)
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [], set(), done)
    assert not cycles, "\n".join(cycles)


def test_the_method_registry_and_the_config_name_the_same_methods():
    import typing

    from seektune.method_config import MethodConfig
    from seektune.models.methods import METHODS

    assert set(typing.get_args(MethodConfig.model_fields["name"].annotation)) == set(METHODS)


def test_the_objective_registry_and_the_config_name_the_same_objectives():
    import typing

    from seektune.objective_config import ObjectiveConfig
    from seektune.train.objectives import OBJECTIVES

    assert set(typing.get_args(ObjectiveConfig.model_fields["name"].annotation)) == set(OBJECTIVES)
