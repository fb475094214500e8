"""The pygls wiring: document sync, debounced diagnostics and the request handlers.

Diagnostics: every open or change schedules a compile of the document after ``debounce``
seconds (0 on open and save); a newer change cancels the wait, and a compile whose document
changed meanwhile is dropped unpublished. Compiles run one at a time on a worker thread, so
requests (hover, completion...) are answered while a large file compiles. Open documents
that import the changed one are re-checked too, with the unsaved text.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from archon.dsl.limits import SourceLimits
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.lsp.analysis import Analysis, analyze
from archon.lsp.completion import Item, complete_at
from archon.lsp.definition import Place, definition_at
from archon.lsp.diagnostics import file_uri, lsp_range, to_lsp
from archon.lsp.formatting import format_edits
from archon.lsp.hover import hover_at
from archon.lsp.symbols import document_symbols
from archon.lsp.text import from_client_col, line_starts, line_text, offset_at, to_client_col
from archon.version import package_version

logger = logging.getLogger(__name__)


DEBOUNCE_S = 0.05
"""Seconds without a keystroke before a changed document is compiled."""

T = TypeVar("T")

_ITEM_KINDS = {
    "kind": types.CompletionItemKind.Function,
    "block": types.CompletionItemKind.Module,
    "keyword": types.CompletionItemKind.Keyword,
    "param": types.CompletionItemKind.Property,
    "value": types.CompletionItemKind.EnumMember,
    "model": types.CompletionItemKind.Constant,
    "prompt": types.CompletionItemKind.Text,
    "node": types.CompletionItemKind.Variable,
    "function": types.CompletionItemKind.Function,
    "file": types.CompletionItemKind.File,
}


class PipeServer(LanguageServer):
    """The ``.pipe`` language server."""

    def __init__(
        self,
        limits: SourceLimits | None = None,
        debounce: float = DEBOUNCE_S,
        registry: Registry | None = None,
    ) -> None:
        super().__init__(
            "archon-lsp",
            package_version(),
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.limits = limits or SourceLimits()
        self.debounce = debounce
        self._registry = registry
        self.analyses: dict[str, Analysis] = {}
        self.parsed: dict[str, Analysis] = {}
        """The last analysis of each document whose text parsed: its definitions serve
        requests while the current text is broken."""
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archon-compile")

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = default_registry()
        return self._registry

    @property
    def encoding(self) -> str:
        value = self.workspace.position_encoding
        return str(getattr(value, "value", value) or "utf-16")

    async def in_worker(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.compiler, partial(function, *args))

    # --- diagnostics ----------------------------------------------------------------------

    def schedule(self, uri: str, delay: float) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self._check(uri, delay))

    async def _check(self, uri: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        document = self.workspace.get_text_document(uri)
        version, text = document.version, document.source
        path = document_path(uri)
        overlay = self._overlay(uri)
        analysis = await self.in_worker(analyze, text, path, self.registry, self.limits, overlay)
        current = self.workspace.text_documents.get(uri)
        if current is None or current.version != version:
            return  # closed or edited meanwhile: a newer check is scheduled
        self.analyses[uri] = analysis
        if analysis.ok:
            self.parsed[uri] = analysis
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                version=version,
                diagnostics=to_lsp(analysis, file_uri, self.encoding),
            )
        )
        if self.pending.get(uri) is asyncio.current_task():
            del self.pending[uri]

    def _overlay(self, skip: str) -> dict[str, str]:
        return {
            os.path.abspath(document_path(uri)): document.source
            for uri, document in self.workspace.text_documents.items()
            if uri != skip and uri.startswith("file:")
        }

    def recheck_importers(self, uri: str) -> None:
        """Re-check the open documents that import ``uri`` (directly or not)."""
        changed = os.path.abspath(document_path(uri))
        for other, analysis in list(self.analyses.items()):
            if other == uri:
                continue
            imported = {os.path.abspath(path) for path in analysis.import_targets}
            if changed in imported:
                self.schedule(other, self.debounce)

    # --- requests -------------------------------------------------------------------------

    def index(self, uri: str) -> Analysis | None:
        return self.parsed.get(uri) or self.analyses.get(uri)

    def cursor(self, uri: str, position: types.Position) -> tuple[str, int]:
        """The document's text and the cursor's offset in it."""
        text = self.workspace.get_text_document(uri).source
        starts = line_starts(text)
        line = line_text(text, position.line, starts)
        col = from_client_col(line, position.character, self.encoding)
        return text, offset_at(text, position.line, col, starts)

    def offsets_range(self, text: str, start: int, end: int) -> types.Range:
        starts = line_starts(text)

        def position(offset: int) -> types.Position:
            from archon.lsp.text import position_at

            line, col = position_at(offset, starts)
            units = to_client_col(line_text(text, line, starts), col, self.encoding)
            return types.Position(line=line, character=units)

        return types.Range(start=position(start), end=position(end))

    def location(self, place: Place, current_text: str) -> types.Location:
        if place.in_current:
            text = current_text
        else:
            uri = file_uri(place.path)
            open_document = self.workspace.text_documents.get(uri)
            text = open_document.source if open_document is not None else _read(place.path)
        starts = line_starts(text)

        def lines(line: int) -> str:
            return line_text(text, line, starts)

        from archon.source import Span

        span = Span(
            path=place.path,
            line=place.line + 1,
            col=place.col + 1,
            end_line=place.end_line + 1,
            end_col=place.end_col + 1,
        )
        return types.Location(uri=file_uri(place.path), range=lsp_range(span, lines, self.encoding))


def document_path(uri: str) -> str:
    """The file path of a document URI (``<uri>`` for an unsaved, untitled one)."""
    if uri.startswith("file:"):
        return to_fs_path(uri) or uri
    return f"<{uri}>"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def completion_item(item: Item) -> types.CompletionItem:
    documentation = (
        types.MarkupContent(kind=types.MarkupKind.Markdown, value=item.documentation)
        if item.documentation
        else None
    )
    return types.CompletionItem(
        label=item.label,
        kind=_ITEM_KINDS[item.kind],
        detail=item.detail or None,
        insert_text=item.insert,
        documentation=documentation,
    )


def build_server(
    limits: SourceLimits | None = None,
    debounce: float = DEBOUNCE_S,
    registry: Registry | None = None,
) -> PipeServer:
    """A server with every feature registered (not started)."""
    server = PipeServer(limits, debounce, registry)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: PipeServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: PipeServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, ls.debounce)
        ls.recheck_importers(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: PipeServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.recheck_importers(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: PipeServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = ls.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.analyses.pop(uri, None)
        ls.parsed.pop(uri, None)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: PipeServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        text, offset = ls.cursor(uri, params.position)
        found = hover_at(text, offset, ls.index(uri), ls.registry)
        if found is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
            range=ls.offsets_range(text, found.start, found.end),
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=["(", ",", "=", "-", "[", '"', "/"]),
    )
    def completion(ls: PipeServer, params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        text, offset = ls.cursor(uri, params.position)
        items = complete_at(text, offset, ls.index(uri), ls.registry)
        return types.CompletionList(
            is_incomplete=False, items=[completion_item(item) for item in items]
        )

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: PipeServer, params: types.DefinitionParams) -> types.Location | None:
        uri = params.text_document.uri
        text, offset = ls.cursor(uri, params.position)
        place = definition_at(text, offset, ls.index(uri), ls.registry)
        return ls.location(place, text) if place is not None else None

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: PipeServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        analysis = ls.index(params.text_document.uri)
        if analysis is None or analysis.file is None:
            return []
        return document_symbols(analysis.file, analysis.text, ls.encoding)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    async def formatting(
        ls: PipeServer, params: types.DocumentFormattingParams
    ) -> list[types.TextEdit] | None:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        return await ls.in_worker(format_edits, text, document_path(uri), ls.limits, ls.encoding)

    return server


def serve(limits: SourceLimits | None = None, debounce: float = DEBOUNCE_S) -> None:
    """Run the server on stdin/stdout until the client says exit."""
    build_server(limits, debounce).start_io()
