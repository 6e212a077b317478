"""The three ways a fast-path program can fail, kept apart so nothing swallows the wrong one.

`JqFastError` is a jq runtime error (what `error/1` raises, or `Cannot iterate over null
(null)`): it carries the jq error value, and `message` renders it exactly as the `jq` binding
does, so callers can report it verbatim. `Fallback` is not an error at all: it tells the caller
to rerun the whole program on libjq, because the fast path met a case it does not mirror exactly
(a non-finite number, an index beyond what it models). `Unsupported` is raised at compile time
for syntax outside the subset; `compile_fast` turns it into `None`.
"""

from __future__ import annotations

import json
from typing import Any


class JqFastError(Exception):
    """A jq runtime error; `value` is the jq error value (usually a message string)."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value

    @property
    def message(self) -> str:
        """The text the `jq` binding puts in its `ValueError` for this error value."""
        if isinstance(self.value, str):
            return self.value
        from webpipe.jqfast.values import to_output

        return json.dumps(to_output(self.value))


class Fallback(Exception):
    """Signal: this run needs libjq (the fast path cannot mirror it exactly)."""


class Unsupported(Exception):
    """The program uses syntax or a builtin outside the fast-path subset."""


class JqSyntaxError(Unsupported):
    """The program is not valid jq; libjq reports the real error."""
