"""The client examples of docs/serve.md run, as written, against a served ``baseline``.

Only the address is replaced (the test server listens on a free port, not 8000); the
examples read the key from ``ARCHON_SERVE_KEY`` as the docs say.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from archon.compiler import compile_file
from archon.compiler.structure import assign
from archon.layers import default_registry
from archon.runtime.clients.fake import ScriptedClient
from archon.serve import RunningServer, ServedPipeline, ServeSettings, create_app, start

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "serve.md"
TEXT = DOCS.read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, re.S)
CURL = [b for b in re.findall(r"```bash\n(.*?)```", TEXT, re.S) if b.startswith("curl")]
DOC_URL = "http://127.0.0.1:8000"
KEY = "docs-example-key-0123456789"
ANSWER = "A scripted answer from the baseline pipeline."


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``examples/baseline.pipe`` served on a free port from a background event loop."""
    registry = default_registry()
    compiled = compile_file(ROOT / "examples" / "baseline.pipe", registry)
    assert compiled is not None
    pipeline = assign(compiled, None, registry)[0]
    backend = ScriptedClient([(None, ANSWER)], chunk_chars=8)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def up() -> RunningServer:
        app = create_app(
            [ServedPipeline.build("baseline", pipeline, registry)],
            client=backend,
            registry=registry,
            settings=ServeSettings(api_key=KEY),
        )
        return await start(app, "127.0.0.1", 0)

    running = asyncio.run_coroutine_threadsafe(up(), loop).result(30)
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _run_python(code: str, url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    assert DOC_URL in code
    monkeypatch.setenv("ARCHON_SERVE_KEY", KEY)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(DOC_URL, url), str(DOCS), "exec"), {"__name__": "docs"})
    return out.getvalue()


def test_the_docs_have_the_examples() -> None:
    assert sum("from openai import OpenAI" in b for b in PYTHON) == 2
    assert sum("langchain_openai" in b for b in PYTHON) == 1
    assert len(CURL) == 3


def test_openai_client_examples(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in PYTHON if "from openai import" in b]
    first = _run_python(blocks[0], server, monkeypatch).splitlines()
    assert first[0] == ANSWER
    tokens, calls, usd = first[1].split()
    assert int(tokens) > 0 and calls == "1" and float(usd) == 0.0
    second = _run_python(blocks[1], server, monkeypatch)
    streamed, rest = second.split("\ntokens: ", 1)
    assert streamed == ANSWER
    assert rest.splitlines()[1] == repr([ANSWER, ANSWER])


def test_langchain_example(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    block = next(b for b in PYTHON if "langchain_openai" in b)
    assert _run_python(block, server, monkeypatch) == ANSWER + "\n" + ANSWER


def test_curl_examples(server: str) -> None:
    env = {**os.environ, "ARCHON_SERVE_KEY": KEY}
    outputs = [
        subprocess.run(
            ["bash", "-c", block.replace(DOC_URL, server)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        for block in CURL
    ]
    plain, streamed, listing = outputs
    assert f'"content":"{ANSWER}"' in plain and '"archon"' in plain
    assert streamed.rstrip().endswith("data: [DONE]") and '"delta":{"content":' in streamed
    assert '"id":"baseline"' in listing and '"status":"ok"' in listing
    assert "# TYPE archon_requests_total counter" in listing
