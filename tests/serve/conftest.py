"""Helpers for server tests: compile small pipelines, serve them in-process on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from aiohttp import web

from archon.compiler import compile_source
from archon.compiler.structure import assign
from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.runtime import CallCache, Limits, ModelClient, RunEnv, TraceSink
from archon.serve import RunningServer, ServedPipeline, ServerBudget, ServeSettings, create_app
from archon.serve import start as start_server

MODELS = 'models { m = "openai/m" }\n'
DIRECT = MODELS + "pipeline direct { generate(models = [m], max_tokens = 64) }\n"
VOTED = MODELS + "pipeline voted { generate(models = [m], samples = 3) vote() }\n"
KEY = "test-serve-key-0123456789"


def compile_text(text: str, registry: Registry | None = None) -> Pipeline:
    """A concrete pipeline from ``.pipe`` text (holes take their defaults)."""
    registry = registry or default_registry()
    return assign(compile_source(text, "test.pipe", registry), None, registry)[0]


def served(*texts: str | Pipeline) -> list[ServedPipeline]:
    registry = default_registry()
    pipelines = [t if isinstance(t, Pipeline) else compile_text(t, registry) for t in texts]
    return [ServedPipeline.build(p.name, p, registry) for p in pipelines]


@dataclass
class Served:
    """A running in-process server and an OpenAI client pointed at it."""

    server: RunningServer
    client: openai.AsyncOpenAI
    app: web.Application

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root(self) -> str:
        return self.server.url.removesuffix("/v1")


@asynccontextmanager
async def serving(
    backend: ModelClient,
    texts: Sequence[str | Pipeline] = (DIRECT, VOTED),
    *,
    settings: ServeSettings | None = None,
    budget: ServerBudget | None = None,
    cache: CallCache | None = None,
    trace: TraceSink | None = None,
    limits: Limits | None = None,
    api_key: str = KEY,
) -> AsyncIterator[Served]:
    """Serve ``texts`` on 127.0.0.1 (a free port) with ``backend`` answering model calls."""
    env = RunEnv(
        client=backend,
        registry=default_registry(),
        cache=cache,
        trace=trace,
        limits=limits or Limits(backoff_s=0.001, max_backoff_s=0.01, timeout_s=10.0),
    )
    app = create_app(served(*texts), env, settings=settings, budget=budget)
    server = await start_server(app, "127.0.0.1", 0, shutdown_timeout_s=5.0)
    client = openai.AsyncOpenAI(base_url=server.url, api_key=api_key, max_retries=0)
    try:
        yield Served(server, client, app)
    finally:
        await client.close()
        await server.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sse_events(raw: str) -> list[str]:
    """The data of each SSE event, comments excluded."""
    events = []
    for block in raw.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            events.append("\n".join(data))
    return events


def chunks_of(raw: str) -> list[dict[str, Any]]:
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


ROOT = Path(__file__).resolve().parents[2]


async def start_cli(args: Sequence[str], *, home: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``python -m archon serve ARGS --port 0 --api-key-env SERVE_KEY`` (key: KEY) and
    wait for its "listening on URL" line; returns the process and the URL."""
    env = {**os.environ, "ARCHON_HOME": str(home), "PYTHONPATH": str(ROOT), "SERVE_KEY": KEY}
    command = [sys.executable, "-m", "archon", "serve", *args, "--port", "0"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--api-key-env",
        "SERVE_KEY",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 120)).decode()
        seen.append(line)
        assert line, "the server exited before listening:\n" + "".join(seen)
        found = re.search(r"listening on (\S+)", line)
        if found:
            return process, found.group(1)
