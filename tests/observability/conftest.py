"""Helpers for the observability tests: a scripted pipeline, and spans kept in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from archon.compiler import compile_source
from archon.ir import Pipeline
from archon.layers import load_builtin_layers
from archon.layers.registry import Registry
from archon.runtime.clients.fake import ScriptedClient
from archon.values import CompletionRequest

# Two branches at once (two samples of `small`, one of `big`), fused twice, a vote, and a gate
# whose score (the vote share, 1/3) passes the gate: the query stops there, skipping `extra`.
PIPE = """
models {
  small = "openai/small"
  big = "anthropic/big"
}

pipeline traced {
  drafts = generate(models = [small], samples = 2, max_tokens = 32)
  other = generate(models = [big], max_tokens = 32)
  merged = fuse(models = [big], max_tokens = 32) <- drafts, other
  final = fuse(models = [small], max_tokens = 32) <- merged
  voted = vote() <- drafts, final
  exit_if(when = "score", threshold = 0.3) <- voted
  extra = fuse(models = [big], max_tokens = 32) <- voted
}
"""

LATENCY = {"openai/small": 0.03, "anthropic/big": 0.06}


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_builtin_layers()


@pytest.fixture(scope="session")
def traced(registry: Registry) -> Pipeline:
    return compile_source(PIPE, registry=registry)


def scripted(reply: Any = None) -> ScriptedClient:
    """A client whose two samples of ``small`` disagree, with per-model latencies."""
    counter = {"n": 0}

    def answer(request: CompletionRequest) -> str:
        counter["n"] += 1
        if reply is not None:
            return str(reply(request)) if callable(reply) else str(reply)
        return f"answer {counter['n']}"

    return ScriptedClient(answer, latency_s=lambda r: LATENCY.get(r.model, 0.01))


@pytest.fixture
def spans() -> Iterator[Any]:
    """An in-memory span exporter and its provider: ``(exporter, provider)``."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()
