"""Report every syntax error of a file, not just the first (for `webpipe check`).

After an error, the top-level item that contains it (from the nearest line above that starts
an item at column 1 to the next such line below the error) is blanked out — replaced by
spaces, so every offset, line and column stays the same — and the file is parsed again.
"""

from __future__ import annotations

import re

from webpipe.errors import WpSyntaxError
from webpipe.source import Source
from webpipe.syntax.parser import parse

_ITEM_START = re.compile(
    r"^(?:(?:GET|POST|PUT|PATCH|DELETE|config|import|featureFlags|graphqlSchema|query|"
    r"mutation|resolver|pipeline|describe)\b|[A-Za-z]+[ \t]+/"
    r"|[A-Za-z0-9_][A-Za-z0-9_-]*[ \t]+[A-Za-z0-9_][A-Za-z0-9_-]*[ \t]*=)", re.M)
MAX_ERRORS = 50


def all_syntax_errors(source: Source) -> list[WpSyntaxError]:
    errors: list[WpSyntaxError] = []
    text = source.text
    while len(errors) < MAX_ERRORS:
        try:
            parse(Source(source.name, text))
            break
        except WpSyntaxError as exc:
            errors.append(_rebase(exc, source))
            start = exc.span.start if exc.span else len(text)
            blanked = _blank_item(text, start)
            if blanked == text:
                break
            text = blanked
    return errors


def _rebase(exc: WpSyntaxError, source: Source) -> WpSyntaxError:
    """The same error, positioned in the original text (offsets are unchanged)."""
    if exc.span is None:
        return exc
    return WpSyntaxError(exc.message, span=source.span(exc.span.start, exc.span.end))


def _blank_item(text: str, pos: int) -> str:
    """Blank the item holding offset `pos`; an error reported at the very start of an item
    belongs to the item before it (e.g. an unclosed `foreach` seen at the next route)."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    line_start = text.rfind("\n", 0, pos) + 1
    at_item_start = text[line_start:pos].strip() == "" and line_start in starts
    begin = max((s for s in starts if s < line_start), default=0) if at_item_start else \
        max((s for s in starts if s <= line_start), default=0)
    end = line_start if at_item_start else \
        min((s for s in starts if s > line_start), default=len(text))
    chunk = re.sub(r"[^\n]", " ", text[begin:end])
    return text[:begin] + chunk + text[end:]
