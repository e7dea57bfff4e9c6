"""The house rules that keep the structure readable, checked on the source itself:

- no import cycle anywhere in the project (function-level imports included: a cycle they hide is
  still a cycle a reader has to untangle);
- inside `cmcr`, each module imports only from its own layer or below (docs/architecture.md);
- the library imports no gradio, builds no command line (ArgumentParser lives in scripts/), and
  never reaches into the app, the benchmarks or the tools;
- no module over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

PROJECT = ("cmcr", "studio", "benchmarks", "tools")
MAX_LINES = 500
# Low to high; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("cmcr.errors", "cmcr.atomic", "cmcr.cli", "cmcr.config", "cmcr.models.registry", "cmcr.evaluation.metrics"),
    ("cmcr.hub", "cmcr.data.media"),
    ("cmcr.models",),
    ("cmcr.data",),
    ("cmcr.training", "cmcr.evaluation.synthetic"),
    ("cmcr.retrieval",),
    ("cmcr.evaluation",),
    ("cmcr.pipeline",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    files = [p for package in PROJECT for p in (REPO / package).rglob("*.py")]
    files += list((REPO / "scripts").glob("*.py")) + [REPO / "app.py"]
    return {_module_name(path): path for path in files}


SOURCES = _sources()


def _imports(path: Path, module: str) -> set[str]:
    """Project modules `path` imports, at any depth of the file (the module names, not attributes)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in SOURCES}
    found.discard(module)
    return found


GRAPH = {module: _imports(path, module) for module, path in SOURCES.items()}


def _layer(module: str) -> int | None:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def test_the_scan_sees_the_project():
    assert len(SOURCES) > 60 and "cmcr.models.space" in SOURCES and "studio.ui" in SOURCES
    assert "cmcr.models.registry" in GRAPH["cmcr.models.space"]


def test_no_import_cycle_anywhere():
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [module, target])
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_library_modules_import_only_their_own_layer_or_below():
    upward = []
    for module, targets in GRAPH.items():
        if not module.startswith("cmcr.") or module == "cmcr":
            continue
        assert _layer(module) is not None, f"{module} belongs to no layer: add it to LAYERS and the architecture map"
        upward += [f"{module} (layer {_layer(module)}) -> {target} (layer {_layer(target)})"
                   for target in targets if target.startswith("cmcr.") and _layer(target) > _layer(module)]
    assert not upward, upward


def test_the_library_stays_a_library():
    problems = []
    for module, path in SOURCES.items():
        if not module.startswith("cmcr"):
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        problems += [f"{module} imports {name}" for name in sorted(imported & {"gradio", "spaces", "studio",
                                                                                "benchmarks", "tools"})]
        if "ArgumentParser" in {getattr(node, "attr", getattr(node, "id", None)) for node in ast.walk(tree)}:
            problems.append(f"{module} builds a command line (ArgumentParser): move it to scripts/")
    assert not problems, problems


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_no_module_is_over_the_limit(module):
    lines = len(SOURCES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; cut it along a real seam (limit {MAX_LINES})"
