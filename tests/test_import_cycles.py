"""No import cycle among `webpipe/` modules (issue 19; what counts: spec/architecture.md §4).

The graph is built with `ast` from the sources. An edge counts when the import runs while
the importing module is being imported: at module level, including inside `try`, `if` and
class bodies, but not under `if TYPE_CHECKING:` (never run). Imports inside functions run
when called, after every module has loaded; they are how optional backends load lazily
(redis, the shared breaker, OpenTelemetry), so they do not count, except inside the
executor: its recursion lives in one module, and no function-level import may hide a cycle
there.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
Graph = dict[str, set[str]]


def module_names(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The module an import names (`from pkg import mod` names `pkg.mod`, when it is one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool,
              known: dict[str, Path]) -> list[str]:
    """The package modules an import statement loads: `from pkg import mod` loads `pkg.mod`
    (its package is initialised first anyway), `from pkg import name` loads `pkg`."""
    if isinstance(node, ast.Import):
        return [t for alias in node.names if (t := _target(alias.name, known))]
    base = node.module or ""
    if node.level:  # relative: from the package the module is in
        parts = here.split(".") if is_package else here.split(".")[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    out = []
    for alias in node.names:
        target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known \
            else _target(base, known)
        if target is not None:
            out.append(target)
    return out


def _walk(node: ast.AST, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            found += [i for e in child.orelse for i in _walk_one(e, deferred)]
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if deferred:
                found += _walk(child, deferred)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append(child)
        else:
            found += _walk(child, deferred)
    return found


def _walk_one(node: ast.AST, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    wrapper = ast.Module(body=[node], type_ignores=[])  # type: ignore[list-item]
    return _walk(wrapper, deferred)


def import_graph(root: Path, package: str, *, deferred: bool = False) -> Graph:
    """Module -> the package modules it imports (`deferred`: function bodies too)."""
    known = module_names(root, package)
    graph: Graph = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _walk(tree, deferred):
            graph[name].update(_imported(node, name, path.name == "__init__.py", known))
        graph[name].discard(name)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycle_among_webpipe_modules() -> None:
    graph = import_graph(ROOT, "webpipe")
    assert len(graph) > 100 and graph["webpipe.server"]  # the scan sees the package
    assert cycles(graph) == []


def test_the_executor_has_no_cycle_even_through_function_imports() -> None:
    graph = import_graph(ROOT, "webpipe", deferred=True)
    executor = {m: {t for t in ts if t.startswith("webpipe.executor")}
                for m, ts in graph.items() if m.startswith("webpipe.executor")}
    assert "webpipe.executor.pipeline" in executor["webpipe.executor.tasks"]
    assert cycles(executor) == []


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_a_cycle(tmp_path: Path) -> None:
    _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.b import x\n",
        "b.py": "from . import c\nx = 1\n",
        "c.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n",
        "e.py": "def f():\n    import pkg.d\n",
    })
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]
    # type-only imports never count; function bodies count only when asked
    assert cycles(import_graph(tmp_path, "pkg", deferred=True)) == [
        ["pkg.a", "pkg.b", "pkg.c"]]
    _package(tmp_path, {"d.py": "import pkg.e\n"})
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles(import_graph(tmp_path, "pkg", deferred=True)) == [
        ["pkg.a", "pkg.b", "pkg.c"], ["pkg.d", "pkg.e"]]
