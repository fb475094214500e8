"""API keys and tokens never reach traces, errors, logs or the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from archon.layers.registry import Registry
from archon.runtime import (
    CallCache,
    JsonlTrace,
    Limits,
    MemoryTrace,
    NodeFailed,
    Redactor,
    run_sync,
)
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient

from .conftest import node, pipeline

SECRET = "sk-test-0123456789abcdefSECRET"


def test_redactor_patterns_and_env_values() -> None:
    redactor = Redactor.from_environ({"MY_SERVICE_TOKEN": "tok-very-private", "HOME": "/root"})
    text = redactor.redact(
        "auth: Bearer abc.def.ghi key sk-live-ABCDEFGHIJKLMNOP token tok-very-private "
        'api_key="hunter2hunter2" home /root'
    )
    assert "abc.def" not in text and "ABCDEFGHIJ" not in text
    assert "tok-very-private" not in text and "hunter2" not in text
    assert "/root" in text


def test_secrets_never_in_trace_errors_or_cache(
    tmp_path: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    cache = CallCache(tmp_path / "c.sqlite")
    trace_path = tmp_path / "trace.jsonl"
    leaky = ScriptedClient(
        lambda r: f"here is the key {SECRET}",
        fail_first=1,
        failure=lambda r: ModelCallError(
            f"401 from server; headers Authorization: Bearer {SECRET}", retryable=True
        ),
    )
    with JsonlTrace(trace_path, include_prompts=True) as trace:
        run_sync(
            pipeline(node("gen")),
            "hello",
            client=leaky,
            registry=registry,
            cache=cache,
            trace=trace,
            limits=Limits(backoff_s=0.001),
        )
    cache.close()
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text

    failing = ScriptedClient(
        fail_first=1,
        failure=lambda r: ModelCallError(f"bad key {SECRET}", retryable=False),
    )
    memory = MemoryTrace()
    with pytest.raises(NodeFailed) as info:
        run_sync(pipeline(node("gen")), "hello", client=failing, registry=registry, trace=memory)
    assert SECRET not in str(info.value)
    assert memory.records[0].error is not None and SECRET not in memory.records[0].error
