"""The builtin registry: `(name, arity)` to a builder of compiled code.

`BUILTINS` merges the value builtins (`functions.py`) with the closure and stream builtins
(`generators.py`). A call whose `(name, arity)` is missing makes `compile_fast` return None,
so the program runs on libjq; a plugin-style addition is one entry in either table.
"""

from __future__ import annotations

from webpipe.jqfast.code import Code
from webpipe.jqfast.errors import Unsupported
from webpipe.jqfast.functions import VALUE_FUNCTIONS, Builder
from webpipe.jqfast.generators import GENERATOR_FUNCTIONS

BUILTINS: dict[tuple[str, int], Builder] = {**VALUE_FUNCTIONS, **GENERATOR_FUNCTIONS}


def compile_call(name: str, args: tuple[Code, ...]) -> Code:
    """The code for a builtin call, or `Unsupported` when it is outside the subset."""
    builder = BUILTINS.get((name, len(args)))
    if builder is None:
        raise Unsupported(f"{name}/{len(args)} is outside the fast-path subset")
    return builder(args)
