"""Source text and positions.

A `Source` is one `.wp` file's name and text; a `Span` points into it. Every diagnostic
renders through `excerpt()` so the CLI, `check`, the test runner and HTTP error envelopes
all show the same `file:line:col` label with the source line and a caret.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

_CR_LF = re.compile(r"\r+\n")

_new_span = tuple.__new__  # a Span without NamedTuple's keyword-handling constructor


@dataclass(frozen=True)
class Source:
    """One file: its display name and its text (CRLF already normalised to LF)."""

    name: str
    text: str = field(repr=False)

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        find = self.text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return starts

    @classmethod
    def from_text(cls, name: str, text: str) -> Source:
        """Line ends become `\\n`: every run of `\\r` before a `\\n` goes (not only one, so
        that normalising twice changes nothing and `fmt` output reads back the same)."""
        return cls(name, _CR_LF.sub("\n", text) if "\r" in text else text)

    def item(self, start: int, end: int) -> Source:
        """Only `text[start:end]` (which begins a line), at the same offsets, lines and
        columns: the text before it becomes spaces then its newlines. Its line table is
        taken from this one rather than scanned again (syntax recovery parses every item
        of a file this way)."""
        lines = self.text.count("\n", 0, start)
        part = Source(self.name, " " * (start - lines) + "\n" * lines + self.text[start:end])
        starts = self._line_starts
        first = bisect_right(starts, start)
        last = bisect_right(starts, end, first)
        table = [0, *range(start - lines + 1, start + 1), *starts[first:last]]
        part.__dict__["_line_starts"] = table  # the cached_property's slot
        return part

    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        starts = self._line_starts
        index = bisect_right(starts, offset) - 1
        return index + 1, offset - starts[index] + 1

    def span(self, start: int, end: int | None = None) -> Span:
        end = start if end is None else end
        starts, size = self._line_starts, len(self.text)
        if 0 <= start <= end <= size:  # what the parser gives; `position` inlined
            first = bisect_right(starts, start) - 1
            last = bisect_right(starts, end, first) - 1
            return _new_span(Span, (self, first + 1, start - starts[first] + 1,
                                    last + 1, end - starts[last] + 1, start, end))
        line, col = self.position(start)
        end_line, end_col = self.position(end)
        return Span(self, line, col, end_line, end_col, start, end)

    def extent_spans(self) -> Callable[[tuple[int, int] | None], Span]:
        """`span` for a parser's extents, `(start, end)` or None (an empty rule: the empty
        span at 0): one call with the line table at hand, as a parse builds thousands."""
        starts, size, new = self._line_starts, len(self.text), _new_span

        def span(extent: tuple[int, int] | None) -> Span:
            if extent is None:
                return self.span(0, 0)
            start, end = extent
            if not 0 <= start <= end <= size:
                return self.span(start, end)
            first = bisect_right(starts, start) - 1
            last = bisect_right(starts, end, first) - 1
            return new(Span, (self, first + 1, start - starts[first] + 1,
                              last + 1, end - starts[last] + 1, start, end))
        return span


class Span(NamedTuple):
    """A region of a source: 1-based line/column plus character offsets.

    An immutable named tuple rather than a frozen dataclass: every AST node gets one at load,
    and a frozen dataclass cost ~2 µs to build (a tuple ~0.2 µs; W10 builds ~8 000)."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    def __repr__(self) -> str:  # without the source text
        return (f"Span(line={self.line}, column={self.column}, end_line={self.end_line}, "
                f"end_column={self.end_column}, start={self.start}, end={self.end})")

    @property
    def label(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"

    def excerpt(self) -> str:
        """The source line and a caret under the span's first character(s)."""
        text = self.source.line_text(self.line)
        width = self.end_column - self.column if self.end_line == self.line else 1
        width = max(1, min(width, max(1, len(text) - self.column + 1)))
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1])
        return f"{text}\n{pad}{'^' * width}"
