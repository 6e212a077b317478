"""Breakpoints: which lines of which files can hold one, and the ones the client set.

A breakpoint binds to a step: the innermost step whose source covers the requested line,
moved to the step's first line (the `|>` line), which is where the thread stops. In
`webpipe test --inspect` an `it` line binds too, and stops before the test runs. A line
with no step is answered `verified: false` with the reason (DAP's way to grey it out).
Files are keyed by their resolved absolute path, as editors send them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webpipe.executor.env import child_pipelines
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.loader import ProgramIndex
    from webpipe.source import Source, Span


def file_key(path: str | Path) -> str:
    return str(Path(path).resolve())


@dataclass
class LineIndex:
    """Per file: the (first line, last line) of every step (and `it`), and each source."""

    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # source name -> file key

    def add(self, program: ProgramIndex, tests: bool) -> None:
        """Index the files of `program` (replacing what an earlier load said of them)."""
        for module in program.modules:
            key = file_key(module.path)
            self.files[module.source.name] = key
            self.spans[key] = [span for item in module.program.items
                               for span in _item_spans(item, tests)]

    def file_of(self, source: Source) -> str:
        return self.files.get(source.name) or file_key(source.name)

    def bind(self, key: str, line: int) -> int | None:
        """The line a breakpoint asked for at `line` stops on, or None (no step there)."""
        covering = [(end - start, start) for start, end in self.spans.get(key, ())
                    if start <= line <= end]
        return min(covering)[1] if covering else None


def _item_spans(item: n.Item, tests: bool) -> Iterator[tuple[int, int]]:
    body = getattr(item, "pipeline", None)
    if isinstance(body, n.Pipeline):
        yield from _body_spans(body)
    if tests and isinstance(item, n.Describe):
        for test in item.tests:
            yield test.span.line, test.span.line


def _body_spans(body: n.Pipeline) -> Iterator[tuple[int, int]]:
    for step in body.steps:
        yield step.span.line, step.span.end_line
        for child in child_pipelines(step):
            yield from _body_spans(child)


@dataclass
class Breakpoints:
    """The client's breakpoints: the lines it asked for, and where they bound."""

    requested: dict[str, list[int]] = field(default_factory=dict)
    by_file: dict[str, dict[int, int]] = field(default_factory=dict)  # key -> {line: id}
    ids: dict[tuple[str, int], int] = field(default_factory=dict)  # (key, asked) -> id
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> last answer

    def set(self, key: str, lines: list[int], index: LineIndex) -> list[dict[str, Any]]:
        """Replace the file's breakpoints; the DAP `Breakpoint` answer for each line."""
        self.requested[key] = list(lines)
        return self._bind(key, index)

    def rebind(self, index: LineIndex) -> list[dict[str, Any]]:
        """Bind every breakpoint again (a program was loaded): the ones that changed."""
        before = dict(self.answers)
        for key in list(self.requested):
            self._bind(key, index)
        return [a for i, a in self.answers.items() if before.get(i) != a]

    def clear(self) -> None:
        self.requested.clear()
        self.by_file.clear()

    def _bind(self, key: str, index: LineIndex) -> list[dict[str, Any]]:
        bound: dict[int, int] = {}
        answers = []
        for line in self.requested[key]:
            ident = self.ids.setdefault((key, line), len(self.ids) + 1)
            at = index.bind(key, line)
            if at is None:
                answer = {"id": ident, "verified": False, "line": line,
                          "message": "no step on this line (breakpoints stop on steps "
                                     "and `it` lines)"}
            else:
                bound.setdefault(at, ident)
                answer = {"id": ident, "verified": True, "line": at}
            self.answers[ident] = answer
            answers.append(answer)
        if bound:
            self.by_file[key] = bound
        else:
            self.by_file.pop(key, None)
        return answers

    def hit(self, key: str, span: Span) -> int | None:
        """The id of the breakpoint on the step at `span`, if any."""
        lines = self.by_file.get(key)
        return lines.get(span.line) if lines else None
