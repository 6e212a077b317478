"""The jq fast path: the subset of jq that routes use, compiled at load time to closures.

`compile_fast(text)` returns a `FastProgram`, or None when the program needs something
outside the subset (then libjq runs it). A run raises `JqFastError` with libjq's exact
message for jq runtime errors, and `Fallback` when it meets a case the fast path does not
mirror exactly (the caller reruns libjq). spec/jq.md lists the subset and the rules.
"""

from __future__ import annotations

from webpipe.jqfast.errors import Fallback, JqFastError, JqSyntaxError, Unsupported
from webpipe.jqfast.program import FastProgram, compile_fast

__all__ = ["Fallback", "FastProgram", "JqFastError", "JqSyntaxError", "Unsupported",
           "compile_fast"]
