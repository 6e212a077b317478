"""The sandbox worker's `jq` handler: libjq runs, compiled once per worker per program.

The payload is `{"program": TEXT, "input": VALUE, "all": BOOL, "args": {NAME: VALUE}}`: TEXT
is the source libjq compiles (already with the `$context` prelude when the program uses it),
`args` optional `$NAME` bindings (test tooling), and the answer is
the first output (None when there is none) or, with `all`, the list of outputs. A jq error
is raised as `HandlerError` carrying libjq's message, which the server prefixes as usual.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jq

from webpipe.sandbox.channel import Channel, HandlerError


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Any:
    return jq.compile(text)


def run(payload: dict[str, Any], channel: Channel) -> Any:
    try:
        args = payload.get("args")
        # `$name` bindings (test tooling) are compiled into the program: no cache for those
        program = jq.compile(payload["program"], args=args) if args else \
            _compiled(payload["program"])
        outputs = program.input_value(payload.get("input"))
        if payload.get("all"):
            return list(outputs)
        for first in outputs:
            return first
        return None
    except ValueError as exc:
        raise HandlerError(str(exc)) from None
