"""The import graph of preprocess, pipeline, trainer and lowmode: acyclic, and layered so imports only point down.

Every import counts, including those inside functions and under ``if TYPE_CHECKING`` (a cycle that only
type checkers see is still one concept defined in the wrong place).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("preprocess", "pipeline", "trainer", "lowmode")
# Lower layers never import higher ones (the trainer's command modules sit on top of the stages; lowmode, the
# public API that only re-exports, sits above everything, so nothing in the project depends on it).
LAYERS = ("preprocess", "pipeline", "trainer.method", "trainer.report", "trainer.run", "trainer", "lowmode")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports (``from pkg import sub`` counts as pkg.sub when it is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & set(modules)
            out.update(subs or {node.module})
            if subs != {f"{node.module}.{alias.name}" for alias in node.names}:
                out.add(node.module)
    return {name for name in out if name in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int:
    """The layer of the longest prefix in LAYERS that ``module`` falls under (trainer.run.x: trainer.run)."""
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return LAYERS.index(max(matches, key=len))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down():
    upward = [f"{m} -> {dep}" for m, deps in _graph().items() for dep in deps if _layer(dep) > _layer(m)]
    assert not upward, upward


def test_lowmode_only_re_exports_the_stages_below_the_trainer_run():
    """The public API: names from pipeline and trainer.method, none from the training job (trainer.run)."""
    deps = _graph()["lowmode"]
    assert deps and all(_layer(dep) <= LAYERS.index("trainer.method") for dep in deps), deps
    assert not any(name == "lowmode" or name.startswith("lowmode.") for m, ds in _graph().items()
                   if m != "lowmode" for name in ds)


def test_the_graph_sees_function_level_and_type_checking_imports():
    graph = _graph()
    assert "preprocess.build" in graph["preprocess.cli"]  # imported inside a function
    assert "trainer.method.dualmode" in graph["trainer.run.build"]
    # a module's layer is its longest prefix: trainer.method.x is below trainer.run, not on the command layer
    assert [_layer(m) for m in ("trainer.method.rule", "trainer.run.build", "trainer.__main__", "lowmode")] == [2, 4, 5, 6]
