"""Did-you-mean suggestions for unknown names (`jqq` -> `jq`).

One helper, so every "unknown …" diagnostic words its suggestion the same way: the closest
known name by `difflib`'s ratio, appended to the message as
`; did you mean 'jq'?`. Nothing is appended when no name is close: a wrong guess sends the
user further from the fix than none, so the cutoff is 0.75 rather than difflib's 0.6 (which
offers `breakerUrl` for `breakerLimit`: a shared prefix alone).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.75


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to `name`, or None when none is close enough."""
    candidates = sorted({k for k in known if k != name})
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=CUTOFF)
    if not found and name.lower() != name:  # `Jq`, `PG`: case alone
        found = [k for k in candidates if k.lower() == name.lower()][:1]
    return found[0] if found else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest known name, else an empty string."""
    match = closest(name, known)
    return f"; did you mean {match!r}?" if match is not None else ""
