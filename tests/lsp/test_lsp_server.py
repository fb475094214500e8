"""The real server (`archon lsp`) over stdio, driven by pytest-lsp."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from archon.compiler import check_file  # noqa: E402
from archon.layers import default_registry  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "archon", "lsp", "--debounce", "0.05"]
    ),
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=types.ClientCapabilities())
    )
    yield
    await lsp_client.shutdown_session()


async def _diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    async with asyncio.timeout(30):
        while uri not in client.diagnostics:
            await asyncio.sleep(0.02)
    return list(client.diagnostics.pop(uri))


def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.resolve().as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id="pipe",
                version=1,
                text=path.read_text() if text is None else text,
            )
        )
    )
    return uri


def _close(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


def _position(text: str, needle: str, shift: int = 1) -> types.Position:
    for number, line in enumerate(text.splitlines()):
        column = line.split("#")[0].find(needle)
        if column != -1:
            return types.Position(line=number, character=column + shift)
    raise AssertionError(needle)


async def test_examples_open_clean(client: LanguageClient, workspace: Path) -> None:
    for name in ("mixture_of_agents.pipe", "code_best.pipe", "archon_general.pipe"):
        uri = _open(client, workspace / name)
        diagnostics = await _diagnostics(client, uri)
        assert [d for d in diagnostics if d.severity == types.DiagnosticSeverity.Error] == []
        _close(client, uri)


async def test_diagnostics_follow_edits_with_the_compilers_codes(
    client: LanguageClient, workspace: Path
) -> None:
    path = workspace / "mixture_of_agents.pipe"
    text = path.read_text()
    uri = _open(client, path)
    assert await _diagnostics(client, uri) == []
    broken = text.replace("samples = 2", "sample = 2")
    start = _position(text, "samples = 2", 0)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=start,
                        end=types.Position(line=start.line, character=start.character + 7),
                    ),
                    text="sample",
                )
            ],
        )
    )
    published = await _diagnostics(client, uri)
    path.write_text(broken)
    expected = check_file(path, default_registry()).diagnostics
    assert [d.code for d in published] == [d.code for d in expected] != []
    span = expected[0].span
    assert span is not None
    assert published[0].range == types.Range(
        start=types.Position(line=span.line - 1, character=span.col - 1),
        end=types.Position(line=span.end_line - 1, character=span.end_col - 1),
    )
    assert f"help: {expected[0].hint}" in published[0].message
    # Fixing it clears the diagnostics.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    assert await _diagnostics(client, uri) == []
    _close(client, uri)


async def test_a_broken_import_is_marked_on_the_import_line(
    client: LanguageClient, workspace: Path
) -> None:
    library = workspace / "lib" / "models.pipe"
    library.write_text(library.read_text().replace("tiny =", "tiny = = "))
    path = workspace / "mixture_of_agents.pipe"
    uri = _open(client, path)
    published = await _diagnostics(client, uri)
    line = path.read_text().splitlines().index('import "lib/models.pipe"')
    assert published and {d.range.start.line for d in published} == {line}
    related = published[0].related_information
    assert related and related[0].location.uri == library.resolve().as_uri()
    _close(client, uri)


async def test_hover_completion_definition_symbols_formatting(
    client: LanguageClient, workspace: Path
) -> None:
    path = workspace / "code_best.pipe"
    text = path.read_text()
    uri = _open(client, path)
    await _diagnostics(client, uri)
    document = types.TextDocumentIdentifier(uri=uri)

    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=document, position=_position(text, "exec_vote("))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "**exec_vote** — layer kind" in hover.contents.value
    assert "| `num_inputs` |" in hover.contents.value
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=document, position=_position(text, "model = large", 9))
    )
    assert hover is not None and "local/qwen2.5-coder-1.5b" in str(hover.contents)

    completion = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=document, position=_position(text, "num_inputs = 5", 0)
        )
    )
    assert completion is not None
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    labels = {item.label for item in items}
    assert {"num_inputs", "temperature"} <= labels and "model" not in labels

    definition = await client.text_document_definition_async(
        types.DefinitionParams(text_document=document, position=_position(text, "<- pool", 4))
    )
    assert isinstance(definition, types.Location) and definition.uri == uri
    assert text.splitlines()[definition.range.start.line].strip().startswith("pool =")
    definition = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=document, position=_position(text, '"lib/models.pipe"')
        )
    )
    assert isinstance(definition, types.Location)
    assert definition.uri == (workspace / "lib" / "models.pipe").resolve().as_uri()

    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=document)
    )
    assert symbols is not None
    pipeline = symbols[-1]
    assert isinstance(pipeline, types.DocumentSymbol) and pipeline.name == "code_best"
    assert [c.name for c in pipeline.children or []][:3] == ["greedy", "tests", "exit_if"]

    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=document,
            options=types.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    assert not edits  # the examples are formatted
    _close(client, uri)

    messy = workspace / "messy.pipe"
    messy.write_text('pipeline p{generate(models=["local/x"],samples=2)}\n')
    uri = _open(client, messy)
    await _diagnostics(client, uri)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            options=types.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    assert edits and 'generate(models = ["local/x"], samples = 2)' in edits[0].new_text
    _close(client, uri)
