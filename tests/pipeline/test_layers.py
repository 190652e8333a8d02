"""The import layering of edgekd/, read from the source (ast), never from a running import.

- No import circle between modules (function-local imports count: they are circles all the
  same, only deferred).
- No circle between packages (edgekd.latency <-> edgekd.backends and the like), except the
  package face's lazy re-export of `compress` (edgekd/__init__.py).
- No library package imports edgekd.pipeline or edgekd.cli.
- No stage module (edgekd/pipeline/stages/*.py) imports a sibling stage, pipeline/compress.py
  or cli/; `_phase` is the shared training-phase helper, not a stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PKG = ROOT / "edgekd"
LIBRARY = ("search", "distill", "quant", "export", "backends", "latency", "profiling", "report",
           "models", "data")  # fmt: skip
# the one intended edge against the layering: `edgekd.compress` resolves lazily
ALLOWED_PACKAGE_EDGES = {("edgekd", "edgekd.pipeline")}
ALLOWED_MODULE_EDGES = {("edgekd", "edgekd.pipeline.compress")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path], me: str | None = None) -> set[str]:
    """The edgekd modules `path` (the module `me`) imports, anywhere in the file."""
    me = me or module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # `from pkg import sub` imports the submodule when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` of a non-module attribute
                name = name.rpartition(".")[0]
            if name.startswith("edgekd") and name != me:
                found.add(name)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {
        m: {d for d in imports_of(p, modules) if (m, d) not in ALLOWED_MODULE_EDGES}
        for m, p in modules.items()
    }


def package_of(module: str) -> str:
    """edgekd.latency.cost -> edgekd.latency; base modules (edgekd.config) stay themselves."""
    parts = module.split(".")
    if len(parts) >= 2 and (PKG / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_resolves_submodules_and_relative_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import edgekd.x.sub.attr\nfrom edgekd.x import sub, name\n"
        "def g():\n    from .y import z\n    from . import w\n    import os\n"
    )
    modules = dict.fromkeys(["edgekd.x", "edgekd.x.sub", "edgekd.p.y", "edgekd.p.w", "edgekd.p"])
    got = imports_of(f, modules, me="edgekd.p.m")
    assert got == {"edgekd.x", "edgekd.x.sub", "edgekd.p.y", "edgekd.p.w"}


def test_no_module_import_circles():
    assert cycles(module_graph()) == []


def test_no_package_import_circles():
    graph: dict[str, set[str]] = {}
    for m, deps in module_graph().items():
        p = package_of(m)
        graph.setdefault(p, set()).update(
            q for q in map(package_of, deps) if q != p and (p, q) not in ALLOWED_PACKAGE_EDGES
        )
    assert cycles(graph) == []


@pytest.mark.parametrize("package", LIBRARY)
def test_library_packages_import_no_pipeline_or_cli(package):
    bad = {
        (m, d)
        for m, deps in module_graph().items()
        if package_of(m) == f"edgekd.{package}"
        for d in deps
        if package_of(d) in ("edgekd.pipeline", "edgekd.cli")
    }
    assert bad == set()


def test_stages_import_no_sibling_stage_compress_or_cli():
    bad = set()
    for m, deps in module_graph().items():
        if not m.startswith("edgekd.pipeline.stages."):
            continue
        for d in deps:
            sibling = d.startswith("edgekd.pipeline.stages.") and d not in (
                "edgekd.pipeline.stages._phase",
            )
            if sibling or d == "edgekd.pipeline.compress" or package_of(d) == "edgekd.cli":
                bad.add((m, d))
    assert bad == set()


def test_the_trunk_stays_small():
    # compress.py only sequences the stages; no function in pipeline/ is a stage in disguise
    assert len((PKG / "pipeline/compress.py").read_text().splitlines()) < 200
    long = []
    for path in sorted((PKG / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > 80:
                    long.append(f"{path.relative_to(PKG)}::{node.name}")
    assert long == []
