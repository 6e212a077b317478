"""libjq programs, compiled once and shared by every user of jq in a process.

`compile_jq(text)` returns a cached `JqProgram`; `JqProgram.first(value)` runs it and
returns the first output (`None` when there is none), as the reference does. A program that
mentions `$context` is compiled as `.context as $context | .state | PROGRAM` and fed
`{"state": S, "context": C}`, so the context is injected per run without recompiling.
Errors are raised as `JqError` with the reference's message prefixes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jq

JSON = Any
_USES_CONTEXT = re.compile(r"\$context\b")
_CONTEXT_PRELUDE = ".context as $context | .state |\n"


class JqError(Exception):
    """A jq parse, compile or execution error (message already prefixed)."""


class JqProgram:
    """A compiled jq program; thread-safe to run (libjq state is per call)."""

    __slots__ = ("_program", "text", "uses_context")

    def __init__(self, text: str, *, allow_context: bool = True) -> None:
        self.text = text
        self.uses_context = allow_context and bool(_USES_CONTEXT.search(text))
        source = _CONTEXT_PRELUDE + text if self.uses_context else text
        try:
            self._program = jq.compile(source)
        except ValueError as exc:
            raise JqError(f"JQ compilation error: {_clean(exc)}") from None

    def first(self, value: JSON, context: JSON = None) -> JSON:
        """The first output of the program on `value`, or None if it yields nothing."""
        data = {"state": value, "context": context} if self.uses_context else value
        try:
            out = self._program.input_value(data)
            for result in out:
                return result
            return None
        except ValueError as exc:
            raise JqError(f"JQ execution error: {_clean(exc)}") from None

    def all(self, value: JSON) -> list[JSON]:
        try:
            return list(self._program.input_value(value))
        except ValueError as exc:
            raise JqError(f"JQ execution error: {_clean(exc)}") from None


def _clean(exc: Exception) -> str:
    text = str(exc).strip()
    return re.sub(r"^jq: error(?: \(at <unknown>\))?: ", "", text)


@lru_cache(maxsize=4096)
def compile_jq(text: str, allow_context: bool = True) -> JqProgram:
    """Compile (or fetch from the cache) a jq program. Raises `JqError`."""
    return JqProgram(text, allow_context=allow_context)


def truthy(value: JSON) -> bool:
    """jq truthiness: everything but `false` and `null` is true."""
    return value is not None and value is not False
