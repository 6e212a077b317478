"""Run a jq program on libjq (through the `jq` binding, as jqlib does) and on the fast path,
and describe each run as (outputs, error text) so the two can be compared."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jq

from webpipe.jqfast import Fallback, FastProgram, JqFastError

Run = tuple[list[Any], str | None]
PRELUDE = ".context as $context | .state |\n"
MAX_OUTPUTS = 50


def needs_context(text: str) -> bool:
    return "$context" in text


@lru_cache(maxsize=2048)
def libjq_program(text: str) -> Any:
    """The libjq program for `text` (with the `$context` prelude when used), or None."""
    try:
        return jq.compile(PRELUDE + text if needs_context(text) else text)
    except ValueError:
        return None


def libjq_compiles(text: str) -> bool:
    return libjq_program(text) is not None


def run_libjq(text: str, value: Any, context: Any = None) -> Run:
    """Outputs until the first error; the error text as the binding reports it."""
    data = {"state": value, "context": context} if needs_context(text) else value
    program = libjq_program(text)
    if program is None:
        return [], "compile error"
    outputs: list[Any] = []
    try:
        for out in program.input_value(data):
            outputs.append(out)
            if len(outputs) >= MAX_OUTPUTS:
                break
    except ValueError as exc:
        return outputs, str(exc)
    return outputs, None


def run_fast(program: FastProgram, value: Any, context: Any = None) -> Run | None:
    """Like `run_libjq`; None when the fast path asked for libjq (`Fallback`)."""
    variables = {"context": context} if needs_context(program.text) else {}
    outputs: list[Any] = []
    try:
        for out in program.outputs(value, variables):
            outputs.append(out)
            if len(outputs) >= MAX_OUTPUTS:
                break
    except JqFastError as exc:
        return outputs, exc.message
    except Fallback:
        return None
    return outputs, None
