"""The architecture, asserted: no import cycles (in src/ and in benchmarks/), no module importing
from a layer above its own, and no module in src over 600 lines.

Every ``import`` / ``from ... import`` of an svqcast module anywhere in a file counts, also
inside functions (a lazy import is still a dependency). Package facades that map names to
modules lazily by string (``svqcast/__init__.py``, ``svqcast.training``) are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BENCHMARKS = ROOT / "benchmarks"
MAX_LINES = 600

# Lowest first. A module's layer is the longest prefix below that matches its name; it may
# import its own layer (without cycles) and the layers below, never one above.
LAYERS: list[tuple[str, ...]] = [
    ("svqcast.errors", "svqcast.version"),
    ("svqcast.io", "svqcast.configs"),
    ("svqcast.quantizers.base",),
    ("svqcast.quantizers",),
    ("svqcast.models",),
    # time axes: calendars and steps, under the DataSpec that stores a step
    ("svqcast.data.gridded.times",),
    ("svqcast.data.spec",),
    ("svqcast.data.climatology",),  # phased by the time step
    ("svqcast.data", "svqcast.data.base"),  # the registry and the dataset contract
    # the user's gridded files: units, the one reader, the data identity
    ("svqcast.data.gridded.units",),
    ("svqcast.data.gridded.reader",),
    ("svqcast.data.gridded", "svqcast.data.windows", "svqcast.data.video"),
    ("svqcast.data.datasets",),
    ("svqcast.data.loaders",),
    ("svqcast.data.datamodule",),
    ("svqcast.evaluation.metrics",),
    ("svqcast.evaluation.baselines",),
    ("svqcast.evaluation.plots",),
    ("svqcast.evaluation.reports", "svqcast.evaluation"),
    # the engine
    ("svqcast.training.checkpoints",),
    ("svqcast.training.callbacks",),  # the checkpoints and test artifacts the module attaches
    ("svqcast.training.module", "svqcast.training"),
    # forecasts from a checkpoint
    ("svqcast.inference.forecast",),
    ("svqcast.inference.predict", "svqcast.inference"),
    # the application
    ("svqcast.commands", "svqcast.commands.runs", "svqcast.commands.quiet"),
    ("svqcast.commands.data", "svqcast.commands.data_bench"),
    ("svqcast.commands.fit",),
    ("svqcast.commands.reproduce", "svqcast.commands.demo"),
    ("svqcast.cli",),
    ("svqcast",),  # the top-level facade
]


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def benchmark_modules() -> dict[str, Path]:
    """The scripts and packages under benchmarks/, named as they import each other
    (``benchmarks.accuracy.runner``)."""
    return {module_name(p, ROOT): p for p in sorted(BENCHMARKS.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The svqcast modules that ``name`` imports (resolved to modules, not attributes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import attr` only mod
            targets = [
                f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import svqcast.a.b` -> nearest module
                target = target.rpartition(".")[0]
            if target.startswith(("svqcast", "benchmarks")) and target != name:
                out.add(target)
    return out


def graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    mods = modules() if mods is None else mods
    known = set(mods)
    return {name: imported_modules(name, path, known) for name, path in mods.items()}


def layer_of(name: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"module {name} is in no layer: add it to LAYERS"
    return rank


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_and_relative_imports():
    edges = graph()
    # lazy (inside a function) imports count: the CLI reaches training only that way
    assert "svqcast.commands.fit" in edges["svqcast.cli"]
    assert "svqcast.quantizers.base" in edges["svqcast.quantizers.svq"]
    assert "svqcast.data.loaders" in edges["svqcast.data.datamodule"]


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_import_cycles_in_benchmarks():
    edges = graph({**modules(), **benchmark_modules()})
    assert "benchmarks.accuracy.variants" in edges["benchmarks.accuracy.runner"]  # seen
    assert cycles(edges) == []


def test_the_package_never_imports_the_benchmarks():
    edges = graph({**modules(), **benchmark_modules()})
    assert [n for n in modules() if any(d.startswith("benchmarks") for d in edges[n])] == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_from_a_layer_above():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
        for name, deps in graph().items()
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(name)
    ]
    assert upward == []


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_layer_order_is_the_documented_one():
    order = [layer_of(m) for m in ("svqcast.errors", "svqcast.io", "svqcast.quantizers.svq")]
    order += [layer_of(m) for m in ("svqcast.models.simvp", "svqcast.training.module")]
    order += [layer_of(m) for m in ("svqcast.commands.reproduce", "svqcast.cli")]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert layer_of("svqcast.data.datasets.weather") < layer_of("svqcast.commands.data")


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_module_over_600_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (max {MAX_LINES})"
