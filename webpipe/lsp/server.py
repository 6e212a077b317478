"""`webpipe lsp`: the pygls wiring around `features.py`, over stdio.

The server keeps the last analysis of each open buffer. Opening or saving a buffer analyses
it at once and publishes its diagnostics; edits are debounced (`DEBOUNCE_SECONDS`) so a
burst of keystrokes costs one analysis. Requests (definition, hover, symbols) use that
analysis when it matches the current text, else re-load the text without the checks; quick
fixes (did-you-mean) come from it only while it matches.
Completion reads the current text and borrows names from the last index that loaded, since a
half-typed step rarely parses. With `webpipe.checkDatabase` on, a save also prepares the
file's SQL on its database (`sqlcheck.py`), in the save's own task, while typing goes on.
Positions are converted with the client's position encoding (UTF-16 by default); the
features themselves work in code points.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path

import click

try:
    from lsprotocol import types as t
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"{exc}; install it with: pip install 'webpipe[lsp]'") from exc

from webpipe import __version__
from webpipe.errors import Diagnostic
from webpipe.lsp import features as f
from webpipe.lsp.analysis import Document, analyze
from webpipe.lsp.fixes import quick_fixes
from webpipe.lsp.sqlcheck import DatabaseChecks, column_completions, column_hover
from webpipe.source import Source, Span

DEBOUNCE_SECONDS = 0.25
LOG = logging.getLogger(__name__)

SYMBOL_KINDS: dict[f.SymbolKind, t.SymbolKind] = {
    "route": t.SymbolKind.Method, "pipeline": t.SymbolKind.Function,
    "variable": t.SymbolKind.Variable, "describe": t.SymbolKind.Namespace,
    "test": t.SymbolKind.Event, "resolver": t.SymbolKind.Function,
    "config": t.SymbolKind.Object, "import": t.SymbolKind.Module,
    "schema": t.SymbolKind.Struct, "flags": t.SymbolKind.Boolean,
}
COMPLETION_KINDS: dict[f.CompletionKind, t.CompletionItemKind] = {
    "middleware": t.CompletionItemKind.Function, "flow": t.CompletionItemKind.Keyword,
    "pipeline": t.CompletionItemKind.Reference, "tag": t.CompletionItemKind.Property,
    "variable": t.CompletionItemKind.Variable,
}
SEVERITIES = {"error": t.DiagnosticSeverity.Error, "warning": t.DiagnosticSeverity.Warning}


class WebpipeServer(LanguageServer):
    """A pygls server that remembers the last analysis of each open buffer."""

    def __init__(self) -> None:
        super().__init__("webpipe", __version__)
        self.analysed: dict[str, Document] = {}
        self.generation: dict[str, int] = {}
        self.database = DatabaseChecks()  # `webpipe.checkDatabase`: SQL checked on save

    def text(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def publish(self, uri: str, extra: list[Diagnostic] | None = None) -> None:
        """Analyse the buffer and send its diagnostics, with the last database check's on
        lines not edited since (moved to where those lines are now) and `extra`."""
        try:
            doc = analyze(self.text(uri), path_of(uri))
        except Exception as exc:  # a checker bug must not silence the buffer for good
            LOG.exception("analysing %s failed", uri)
            doc = Document(path_of(uri), Source.from_text(uri, self.text(uri)),
                           diagnostics=[Diagnostic(f"webpipe lsp: internal error: {exc!r}")])
        self.analysed[uri] = doc
        found = [*doc.diagnostics, *self.database.kept(uri, doc.source), *(extra or ())]
        diagnostics = [self.diagnostic(d) for d in found]
        self.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    async def publish_later(self, uri: str) -> None:
        """Publish after `DEBOUNCE_SECONDS` unless another edit arrived meanwhile."""
        generation = self.generation[uri] = self.generation.get(uri, 0) + 1
        await asyncio.sleep(DEBOUNCE_SECONDS)
        if self.generation.get(uri) == generation:
            self.publish(uri)

    def forget(self, uri: str) -> None:
        self.database.forget(uri)
        self.analysed.pop(uri, None)
        self.generation.pop(uri, None)
        self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def current(self, uri: str) -> Document:
        """An analysis of the buffer's current text (the cached one when still valid)."""
        text = Source.from_text("", self.text(uri)).text
        cached = self.analysed.get(uri)
        if cached is not None and cached.source.text == text:
            return cached
        return analyze(text, path_of(uri), check=False)

    def offset(self, doc: Document, uri: str, position: t.Position) -> int:
        lines = self.workspace.get_text_document(uri).lines
        server = self.workspace.position_codec.position_from_client_units(lines, position)
        return doc.offset(server.line, server.character)

    def range(self, span: Span) -> t.Range:
        lines = _lines(span.source.text)
        codec = self.workspace.position_codec
        start = t.Position(line=span.line - 1, character=span.column - 1)
        end = t.Position(line=span.end_line - 1, character=span.end_column - 1)
        return t.Range(start=codec.position_to_client_units(lines, start),
                       end=codec.position_to_client_units(lines, end))

    def diagnostic(self, found: Diagnostic) -> t.Diagnostic:
        origin = t.Position(line=0, character=0)
        where = self.range(found.span) if found.span else t.Range(start=origin, end=origin)
        message = "\n".join((found.message, *found.notes))  # PostgreSQL's hint, for one
        return t.Diagnostic(range=where, message=message, source="webpipe",
                            severity=SEVERITIES[found.severity], code=found.code)

    def symbol(self, symbol: f.Symbol) -> t.DocumentSymbol:
        return t.DocumentSymbol(name=symbol.name, kind=SYMBOL_KINDS[symbol.kind],
                                range=self.range(symbol.span),
                                selection_range=self.range(symbol.selection),
                                detail=symbol.detail or None,
                                children=[self.symbol(c) for c in symbol.children])

    def location(self, target: f.Target) -> t.Location:
        origin = t.Position(line=0, character=0)
        where = self.range(target.span) if target.span else t.Range(start=origin, end=origin)
        return t.Location(uri=target.path.as_uri(), range=where)


def _check_database(settings: object) -> bool:
    """`webpipe.checkDatabase` from initialization options or a configuration change."""
    return isinstance(settings, dict) and settings.get("checkDatabase") is True


@lru_cache(maxsize=16)
def _lines(text: str) -> list[str]:
    return text.split("\n")


def path_of(uri: str) -> Path:
    """The file a document URI names; unsaved (`untitled:`) buffers live in the cwd."""
    path = to_fs_path(uri)
    return Path(path) if path and uri.startswith("file:") else Path.cwd() / "untitled.wp"


def create_server() -> WebpipeServer:
    """A server with every feature registered (not started)."""
    ls = WebpipeServer()
    _register_sync(ls)
    _register_requests(ls)
    _register_editing(ls)
    return ls


def _register_sync(ls: WebpipeServer) -> None:
    @ls.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: t.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @ls.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(params: t.DidChangeTextDocumentParams) -> None:
        await ls.publish_later(params.text_document.uri)

    @ls.feature(t.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(params: t.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.generation[uri] = ls.generation.get(uri, 0) + 1
        ls.publish(uri)
        if ls.database.enabled and uri.startswith("file:"):
            found = await ls.database.run(uri, path_of(uri).resolve())  # this task, owned
            if found is not None:  # placed ones are kept by `run` and moved with edits
                ls.publish(uri, [d for d in found if d.span is None])

    @ls.feature(t.INITIALIZE)
    def initialize(params: t.InitializeParams) -> None:
        ls.database.enabled = _check_database(params.initialization_options)

    @ls.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(params: t.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get("webpipe"), dict):
            settings = settings["webpipe"]
        ls.database.enabled = _check_database(settings)

    @ls.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: t.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)


def _register_requests(ls: WebpipeServer) -> None:
    @ls.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
        doc = ls.current(params.text_document.uri)
        if doc.index is None:
            return []
        return [ls.symbol(s) for s in f.symbols(doc.index.main.program)]

    @ls.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(params: t.DefinitionParams) -> list[t.Location]:
        uri = params.text_document.uri
        doc = ls.current(uri)
        return [ls.location(target)
                for target in f.definitions(doc, ls.offset(doc, uri, params.position))]

    @ls.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(params: t.HoverParams) -> t.Hover | None:
        uri = params.text_document.uri
        doc = ls.current(uri)
        offset = ls.offset(doc, uri, params.position)
        found = f.hover(doc, offset)
        columns = column_hover(ls.database.reports.get(uri), doc.index, doc.source.text, offset)
        if found is None and columns is None:
            return None
        markdown = "\n\n".join(x for x in (found and found.markdown, columns) if x)
        content = t.MarkupContent(kind=t.MarkupKind.Markdown, value=markdown)
        return t.Hover(contents=content, range=ls.range(found.span) if found else None)


def _register_editing(ls: WebpipeServer) -> None:
    triggers = t.CompletionOptions(trigger_characters=["@", ">", " ", ":", "."])

    @ls.feature(t.TEXT_DOCUMENT_COMPLETION, triggers)
    def completion(params: t.CompletionParams) -> t.CompletionList:
        uri = params.text_document.uri
        last = ls.analysed.get(uri)
        text = ls.text(uri)
        doc = Document(path=path_of(uri), source=Source.from_text(str(path_of(uri)), text),
                       index=last.index if last else None)
        offset = ls.offset(doc, uri, params.position)
        items = [t.CompletionItem(label=c.label, kind=COMPLETION_KINDS[c.kind],
                                  detail=c.detail or None)
                 for c in f.completions(doc, offset)]
        items += [t.CompletionItem(label=c.name, kind=t.CompletionItemKind.Field, detail=c.type)
                  for c in column_completions(ls.database.reports.get(uri), doc.index, text,
                                              offset)]
        return t.CompletionList(is_incomplete=False, items=items)

    fixes = t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix])

    @ls.feature(t.TEXT_DOCUMENT_CODE_ACTION, fixes)
    def code_action(params: t.CodeActionParams) -> list[t.CodeAction]:
        """A did-you-mean of the last analysis (while its text is current) as an edit."""
        uri = params.text_document.uri
        doc = ls.analysed.get(uri)
        if doc is None or doc.source.text != Source.from_text("", ls.text(uri)).text:
            return []
        start, end = (ls.offset(doc, uri, p) for p in (params.range.start, params.range.end))
        return [t.CodeAction(
            title=fix.title, kind=t.CodeActionKind.QuickFix, is_preferred=True,
            diagnostics=[ls.diagnostic(fix.diagnostic)],
            edit=t.WorkspaceEdit(changes={uri: [t.TextEdit(range=ls.range(fix.span),
                                                           new_text=fix.new_text)]}))
            for fix in quick_fixes(doc.diagnostics, doc.source.text, start, end)]

    @ls.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(params: t.DocumentFormattingParams) -> list[t.TextEdit]:
        uri = params.text_document.uri
        text = ls.text(uri)
        formatted = f.format_text(text, str(path_of(uri)))
        if formatted is None or formatted == text:
            return []
        lines = text.split("\n")
        end = ls.workspace.position_codec.position_to_client_units(
            lines, t.Position(line=len(lines) - 1, character=len(lines[-1])))
        whole = t.Range(start=t.Position(line=0, character=0), end=end)
        return [t.TextEdit(range=whole, new_text=formatted)]


@click.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk over stdin/stdout (the default).")
def lsp_command(stdio: bool) -> None:
    """Run the webpipe language server (diagnostics, definitions, symbols, formatting)."""
    create_server().start_io()
