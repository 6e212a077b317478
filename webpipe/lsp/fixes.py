"""Quick fixes: the did-you-mean of a diagnostic as an edit the editor can apply.

`check` words a suggestion as `…'bad'…; did you mean 'good'?` (webpipe/suggest.py); the
misspelled name is the first quoted name of the message (or the `@tag` / `@onError(name)`
it is about), found as a whole word inside the diagnostic's span. A fix is offered only when
that name occurs there, so an edit never lands on the wrong text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webpipe.errors import Diagnostic
from webpipe.source import Span

_GOOD = re.compile(r"; did you mean '([^']+)'\?$")
_BAD = re.compile(r"^unknown tag (@[A-Za-z0-9_-]+)|^@onError\(([^)]+)\)|'([^']+)'")


@dataclass(frozen=True, slots=True)
class Fix:
    title: str
    span: Span  # the text to replace
    new_text: str
    diagnostic: Diagnostic


def quick_fixes(diagnostics: list[Diagnostic], text: str, start: int, end: int) -> list[Fix]:
    """The fixes of the diagnostics on the lines of offsets `start`..`end` of `text` (an
    editor asks for the cursor's position, which need not be inside the diagnostic)."""
    start = text.rfind("\n", 0, start) + 1
    end = len(text) if (stop := text.find("\n", end)) < 0 else stop
    return [fix for d in diagnostics if d.span is not None
            and d.span.start <= end and start <= d.span.end
            for fix in [_fix(d, d.span)] if fix is not None]


def _fix(diagnostic: Diagnostic, span: Span) -> Fix | None:
    good = _GOOD.search(diagnostic.message)
    bad = _BAD.search(diagnostic.message)
    if good is None or bad is None:
        return None
    name = next(g for g in bad.groups() if g is not None)
    text = span.source.text
    found = re.compile(rf"(?<![\w@-]){re.escape(name)}(?![\w-])").search(text, span.start,
                                                                        span.end)
    if found is None:
        return None
    return Fix(f"Replace {name!r} with {good.group(1)!r}",
               span.source.span(found.start(), found.end()), good.group(1), diagnostic)
