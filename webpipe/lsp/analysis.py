"""Analyse an editor buffer: the same diagnostics as `webpipe check`, plus a program index.

The buffer may be unsaved, so it is loaded from its text with the file's directory as the
base for imports (`load_source`), then planned (`build_env`), served (`build_served`: route
conflicts and the GraphQL schema) and checked (`check_env`), exactly as `check_file` does.
Syntax errors in the buffer are all reported (`syntax.recover`, as `check` does), and the
items that parse are still indexed and checked, so the outline, definitions and the other
problems survive an unclosed backtick. When only an import fails, the buffer's own module
is still indexed, so symbols and definitions keep working.
Problems located in other files are reported on the `import` line that brings them in
(errors only: a file's warnings show when that file itself is open).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webpipe.check import check_env
from webpipe.errors import Diagnostic, WebpipeError, WpSyntaxError
from webpipe.executor.env import build_env
from webpipe.loader import Module, ProgramIndex, load_source
from webpipe.recovered import check_recovered, recovered_index
from webpipe.server import build_served
from webpipe.source import Source, Span
from webpipe.syntax import nodes as n
from webpipe.syntax.recover import recover


@dataclass(eq=False)
class Document:
    """One analysed buffer: its text, its index (of what parses), its problems."""

    path: Path
    source: Source
    index: ProgramIndex | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def module(self) -> Module | None:
        return self.index.main if self.index else None

    def offset(self, line: int, character: int) -> int:
        """Character offset of a 0-based (line, character) position, clamped to the text."""
        lines = self.source.text.split("\n")
        if line >= len(lines):
            return len(self.source.text)
        start = sum(len(text) + 1 for text in lines[:line])
        return start + max(0, min(character, len(lines[line])))


def analyze(text: str, path: Path, *, check: bool = True) -> Document:
    """Load `text` as if it were saved at `path`; plan and check it unless `check` is False."""
    path = path.resolve()
    doc = Document(path=path, source=Source.from_text(str(path), text))
    try:
        doc.index = load_source(doc.source, path)
    except WebpipeError as exc:
        if isinstance(exc, WpSyntaxError) and _in_buffer(doc, exc.diagnostic()):
            return _recovered(doc, exc, check=check)
        doc.index = _buffer_only(doc)
        doc.diagnostics = _localise(doc, [exc.diagnostic()])
        return doc
    if check:
        doc.diagnostics = _localise(doc, _check(doc.index))
    return doc


def _recovered(doc: Document, first: WpSyntaxError, *, check: bool) -> Document:
    """Every syntax error, and the index and problems of the items that parse."""
    recovery = recover(doc.source)
    doc.diagnostics = [e.diagnostic() for e in recovery.errors] or [first.diagnostic()]
    elsewhere: list[Diagnostic] = []
    doc.index = recovered_index(doc.source, doc.path, recovery, elsewhere)
    if doc.index is None:
        doc.index = _buffer_only(doc, recovery.program)
        doc.diagnostics += _localise(doc, elsewhere)
    elif check:
        doc.diagnostics += _localise(doc, check_recovered(doc.index, recovery))
        doc.diagnostics.sort(key=lambda d: (d.span.start if d.span else -1))
    return doc


def _check(index: ProgramIndex) -> list[Diagnostic]:
    try:
        env = build_env(index)
        build_served(env)
    except WebpipeError as exc:
        return [exc.diagnostic()]
    return check_env(env)


def _buffer_only(doc: Document, program: n.Program | None = None) -> ProgramIndex | None:
    """An index of the buffer alone, for when one of its imports cannot be loaded."""
    if program is None:
        try:
            program = recover(doc.source).program
        except WebpipeError:
            return None
    if program is None:
        return None
    main = Module(path=doc.path, source=doc.source, program=program, is_main=True)
    return ProgramIndex(main=main, modules=[main])


def _in_buffer(doc: Document, diagnostic: Diagnostic) -> bool:
    return diagnostic.span is None or diagnostic.span.source is doc.source


def _localise(doc: Document, found: list[Diagnostic]) -> list[Diagnostic]:
    """Keep the buffer's diagnostics; move errors in other files onto an `import` line."""
    out = []
    for diagnostic in found:
        if _in_buffer(doc, diagnostic):
            out.append(diagnostic)
        elif diagnostic.severity == "error" and diagnostic.span is not None:
            span = diagnostic.span
            out.append(Diagnostic(f"{span.label}: {diagnostic.message}",
                                  _import_span(doc, span.source), "error", diagnostic.code))
    return out


def _import_span(doc: Document, source: Source) -> Span | None:
    """The buffer's import of the module whose text is `source` (else its first import)."""
    module = doc.module
    if module is None:
        return None
    imports = [i for i in module.program.items if isinstance(i, n.Import)]
    for item in imports:
        target = module.aliases.get(item.alias)
        if target is not None and target.source is source:
            return item.span
    return imports[0].span if imports else None
