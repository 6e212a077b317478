"""`compile_fast`: a jq program as Python closures, or None when it needs libjq.

`FastProgram.first(value, variables)` returns the first output converted the way the `jq`
binding converts it (None when there is none), raises `JqFastError` for a jq runtime error
(its `message` is libjq's text) and `Fallback` when the run must be redone on libjq. The
first run of `first` (and of `outputs`) generates the program's Python function
(`codegen.py`) and later runs call it; the closures stay the general path, the reference
of the differential tests (`compile_fast(text, generated=False)` keeps to them) and the
fallback when generation declines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

from webpipe.jqfast import nodes as n
from webpipe.jqfast.code import Code
from webpipe.jqfast.codegen import Run, generate
from webpipe.jqfast.compile import compile_node
from webpipe.jqfast.errors import Fallback, Unsupported
from webpipe.jqfast.parser import parse
from webpipe.jqfast.reads import input_keys
from webpipe.jqfast.values import to_output


class FastProgram:
    """A jq program compiled to closures (and, from its first run, to a generated function);
    immutable in behaviour and safe to share between threads."""

    __slots__ = ("_code", "_first", "_outputs", "_tree", "input_keys", "text")

    def __init__(self, text: str, code: Code, input_keys: frozenset[str] | None = None,
                 tree: n.Node | None = None) -> None:
        self.text = text
        self._code = code
        # the top-level input keys the program can read; None: it may read the whole input
        self.input_keys = input_keys
        self._tree = tree  # None: closures only
        # replaced on the first run by the generated function (or the closures' run);
        # two threads racing here both generate the same function, and either one is kept
        self._first: Run = self._generate_first
        self._outputs: Callable[[Any, dict[str, Any]], Iterator[Any]] = self._generate_outputs

    def first(self, value: Any, variables: dict[str, Any]) -> Any:
        """The first output (None if there is none), as the `jq` binding would return it."""
        try:
            return self._first(value, variables)
        except RecursionError:  # very deep values: libjq's own limits apply
            raise Fallback from None

    def outputs(self, value: Any, variables: dict[str, Any]) -> Iterator[Any]:
        """Every output, lazily (errors surface where libjq raises them)."""
        try:
            yield from self._outputs(value, variables)
        except RecursionError:
            raise Fallback from None

    @property
    def generated(self) -> bool:
        """Whether runs call a generated function (after the first run of each API)."""
        return self._first.__name__ == "_run"

    def _generate_first(self, value: Any, variables: dict[str, Any]) -> Any:
        run = None if self._tree is None else generate(self._tree, "first", self.text)
        self._first = self._closure_first if run is None else run
        return self._first(value, variables)

    def _generate_outputs(self, value: Any, variables: dict[str, Any]) -> Iterator[Any]:
        run = None if self._tree is None else generate(self._tree, "outputs", self.text)
        self._outputs = self._closure_outputs if run is None else run
        return self._outputs(value, variables)

    def _closure_first(self, value: Any, variables: dict[str, Any]) -> Any:
        one = self._code.one
        if one is not None:
            return to_output(one(value, variables))
        for out in self._code.gen(value, variables):
            return to_output(out)
        return None

    def _closure_outputs(self, value: Any, variables: dict[str, Any]) -> Iterator[Any]:
        for out in self._code.gen(value, variables):
            yield to_output(out)

    def __repr__(self) -> str:
        return f"FastProgram({self.text!r})"


def compile_fast(text: str, generated: bool = True) -> FastProgram | None:
    """Compile `text` for the fast path, or None when any part of it is outside the subset
    (or it is not valid jq; libjq then reports the error). `generated=False` keeps the run
    on the closures (the reference the generated code is tested against)."""
    try:
        tree = parse(text)
        if free_variables(tree) - {"context"}:
            return None
        return FastProgram(text, compile_node(tree), input_keys(tree),
                           tree if generated else None)
    except Unsupported:
        return None
    except RecursionError:
        return None


def free_variables(node: n.Node, bound: frozenset[str] = frozenset()) -> set[str]:
    """Variables used but not bound by `as` (only `$context` can be supplied at run time)."""
    if isinstance(node, n.Var):
        return set() if node.name in bound else {node.name}
    if isinstance(node, n.Bind):
        return free_variables(node.source, bound) | free_variables(
            node.body, bound | {node.name})
    found: set[str] = set()
    for child in _children(node):
        found |= free_variables(child, bound)
    return found


def _children(node: n.Node) -> list[n.Node]:
    children: list[n.Node] = []
    for field in fields(node):
        value = getattr(node, field.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, n.ObjectEntry):
                children.extend(x for x in (item.key, item.value) if x is not None)
            elif item is not None and not isinstance(item, str | bool | int | float):
                children.append(item)
    return children
