"""Route table: `:name` and `*name` patterns matched against the raw request path.

Segment syntax follows the reference (matchit 0.7): literal text; `:name` matches a
non-empty run up to the next `/` (it may follow literal text in a segment, `/user_:name`);
`*name` at the end matches the non-empty rest, slashes included. Literal text takes
priority over parameters, parameters over catch-alls. Routes that cannot coexist are
reported, and the first registered one wins (spec/language.md §3.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from webpipe.errors import Diagnostic
from webpipe.source import Span

T = TypeVar("T")
_PARAM = re.compile(r":([A-Za-z0-9_][A-Za-z0-9_-]*)|\*([A-Za-z0-9_][A-Za-z0-9_-]*)$")


@dataclass(eq=False)
class CompiledRoute(Generic[T]):
    method: str
    path: str
    regex: re.Pattern[str]
    shape: str  # the path with parameter names erased, for conflict detection
    rank: tuple[int, ...]
    target: T
    span: Span | None = None
    names: tuple[str, ...] = ()  # parameter names, in the order of the regex's groups


def param_names(path: str) -> list[str]:
    """The `:name`/`*name` parameters of a route path, in order."""
    return [m.group(1) or m.group(2) for m in _PARAM.finditer(path)]


def path_problem(path: str) -> str | None:
    """Why a route path cannot be served (a parameter named twice), or None."""
    seen: set[str] = set()
    for name in param_names(path):
        if name in seen:
            return (f"route path {path} names the parameter {name!r} twice; "
                    "each parameter needs its own name")
        seen.add(name)
    return None


def compile_path(path: str) -> tuple[re.Pattern[str], str, tuple[int, ...]]:
    """The path's regex (one unnamed group per parameter, in `param_names` order: names
    such as `a-b` are not Python group names), its shape and its priority rank."""
    pattern, shape, pos = ["^"], [], 0
    for m in _PARAM.finditer(path):
        literal = path[pos:m.start()]
        pattern.append(re.escape(literal))
        shape.append(literal)
        pattern.append("([^/]+)" if m.group(1) else "(.+)")
        shape.append(":" if m.group(1) else "*")
        pos = m.end()
    pattern.append(re.escape(path[pos:]) + "$")
    shape.append(path[pos:])
    rank = tuple(2 if "*" in seg else 1 if ":" in seg else 0 for seg in path.split("/"))
    return re.compile("".join(pattern)), "".join(shape), rank


@dataclass(eq=False)
class Router(Generic[T]):
    by_method: dict[str, list[CompiledRoute[T]]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, method: str, path: str, target: T, span: Span | None = None) -> None:
        problem = path_problem(path)
        if problem is not None:  # the loader refuses these; a Router used alone skips them
            self.diagnostics.append(Diagnostic(problem, span, "error", "route-path"))
            return
        regex, shape, rank = compile_path(path)
        routes = self.by_method.setdefault(method, [])
        for other in routes:
            if other.shape == shape:
                first = other.span.label if other.span else "earlier"
                self.diagnostics.append(Diagnostic(
                    f"route {method} {path} conflicts with {method} {other.path} ({first}); "
                    "the first one is used", span, "warning", "route-conflict"))
                return
        routes.append(CompiledRoute(method, path, regex, shape, rank, target, span,
                                    tuple(param_names(path))))
        routes.sort(key=lambda r: r.rank)  # stable: source order among equal ranks

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        for route in self.by_method.get(method, ()):
            m = route.regex.match(path)
            if m:
                return route.target, dict(zip(route.names, m.groups(), strict=True))
        return None
