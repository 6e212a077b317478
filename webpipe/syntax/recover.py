"""Report every syntax error of a file, and keep what parses (for `check` and the editor).

A file that parses is returned as it is. Otherwise it is cut into top-level items at lines
that start one at column 1 (`GET /path`, `pipeline NAME =`, `describe "…"`, `TYPE NAME =
\\``, …), and each item is parsed alone, at its own offsets (`Source.item`: the text before it
becomes as many spaces and newlines), so lines, columns and the messages that name a line
stay those of the file. The cut ignores backtick strings on purpose: an unclosed backtick then
swallows the rest of its own item only, and the next route, pipeline or test is read again
(resync at the next item). A line inside a string that looks like an item start could cut a
good string in two, which is why the cut is made only once the whole file failed to parse.

The items that parse make the program (their spans point into the original `Source`), so
`check` and the language server can still check, outline and navigate everything else; the
failed ones are listed in `dropped`. Should every item parse alone though the file does
not, the older loop takes over: blank the item at the error, parse again, until the file
parses or `MAX_ERRORS` errors are found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from webpipe.errors import WpSyntaxError
from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse

_ITEM_START = re.compile(
    r"^(?:(?:GET|POST|PUT|PATCH|DELETE|config|import|featureFlags|graphqlSchema|resolver"
    r"|pipeline|describe)\b|(?:query|mutation)[ \t]+[A-Za-z0-9_.]+[ \t]*="
    r"|[A-Za-z]+[ \t]+/"
    # a variable: any kind before a string, a step kind before anything (`pg q = SELECT 1`);
    # not just `word word =`, which Lua written at column 1 has (`local x = 1`)
    r"|[A-Za-z0-9_][A-Za-z0-9_-]*[ \t]+[A-Za-z0-9_][A-Za-z0-9_-]*[ \t]*=[ \t]*(?:`|\"\"\"|$)"
    r"|(?:pg|jq|lua|js|handlebars|mustache|graphql|fetch)[ \t]+[A-Za-z0-9_][A-Za-z0-9_-]*[ \t]*=)",
    re.M)
MAX_ERRORS = 50


@dataclass
class Recovery:
    """A file's syntax errors (none when it parses), and the program of the items that
    parse (None when nothing could be kept)."""

    errors: list[WpSyntaxError] = field(default_factory=list)
    program: n.Program | None = None
    dropped: list[tuple[int, int]] = field(default_factory=list)  # items left out: offsets


def all_syntax_errors(source: Source) -> list[WpSyntaxError]:
    return recover(source).errors


def recover(source: Source) -> Recovery:
    try:
        return Recovery(program=parse(source))
    except WpSyntaxError:
        pass
    errors: list[WpSyntaxError] = []
    dropped: list[tuple[int, int]] = []
    items: list[n.Item] = []
    comments: list[n.Comment] = []
    for start, end in item_ranges(source.text):
        try:
            part = parse(source, read=source.item(start, end))
        except WpSyntaxError as exc:
            errors.append(exc)
            dropped.append((start, end))
            continue
        items += part.items
        comments += part.comments
    if not errors:  # every item parses alone, yet the file does not: no cut to trust
        return _one_by_one(source)
    program = n.Program(items=tuple(items), comments=tuple(comments),
                        span=source.span(0, len(source.text)))
    return Recovery(errors[:MAX_ERRORS], program, dropped)


def item_ranges(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each top-level item; text before the first one is its own."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(text)], strict=True))


def _blank(text: str, ranges: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in ranges:
        out += [text[last:start], re.sub(r"[^\n]", " ", text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


def _one_by_one(source: Source) -> Recovery:
    """The fallback: blank the item at each error in turn and parse again."""
    errors: list[WpSyntaxError] = []
    dropped: list[tuple[int, int]] = []
    text = source.text
    while len(errors) < MAX_ERRORS:
        try:
            program = parse(source, read=Source(source.name, text))
            return Recovery(errors, program, dropped)
        except WpSyntaxError as exc:
            errors.append(exc)  # already placed in `source`
            item = _item_at(text, exc.span.start if exc.span else len(text))
            blanked = _blank(text, [item])
            if blanked == text:
                break
            text = blanked
            dropped.append(item)
    return Recovery(errors, None, dropped)


def _item_at(text: str, pos: int) -> tuple[int, int]:
    """The item holding offset `pos`; an error reported at the very start of an item
    belongs to the item before it (e.g. an unclosed `foreach` seen at the next route)."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    line_start = text.rfind("\n", 0, pos) + 1
    at_item_start = text[line_start:pos].strip() == "" and line_start in starts
    begin = max((s for s in starts if s < line_start), default=0) if at_item_start else \
        max((s for s in starts if s <= line_start), default=0)
    end = line_start if at_item_start else \
        min((s for s in starts if s > line_start), default=len(text))
    return begin, end
