"""A real ``archon run`` exports its spans over OTLP/HTTP: a loopback receiver decodes the
protobuf bodies (and answers the run's model calls as an OpenAI-compatible server)."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KEY = "kq-0b5e7f3a9c1d4e2f8a6b"


@dataclass
class Receiver:
    """What the loopback server got: raw OTLP bodies and the decoded requests."""

    port: int = 0
    bodies: list[bytes] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    chats: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope.spans)
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                got.bodies.append(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                got.requests.append(request)
                self._reply(
                    ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
                )
            elif self.path.endswith("/chat/completions"):
                got.chats += 1
                reply = {
                    "id": f"chatcmpl-{got.chats}",
                    "choices": [
                        {"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4},
                }
                self._reply(json.dumps(reply).encode(), "application/json")
            else:
                self._reply(b"", "text/plain", 404)

        def _reply(self, data: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _archon(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.endswith("_KEY")
    }
    environ.update(ARCHON_HOME=str(tmp_path / "home"), **env)
    return subprocess.run(
        [sys.executable, "-m", "archon", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def _pipe(tmp_path: Path, receiver: Receiver) -> Path:
    pipe = tmp_path / "loop.pipe"
    pipe.write_text(
        f'models {{ m = model("openai/m", api_base = "{receiver.base}/v1") }}\n'
        "pipeline loop {\n"
        "  drafts = generate(models = [m], samples = 2, max_tokens = 8)\n"
        "  fuse(models = [m], max_tokens = 8) <- drafts\n"
        "}\n"
    )
    return pipe


def test_archon_run_exports_spans(receiver: Receiver, tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, receiver)
    done = _archon(
        ["run", str(pipe), "-q", f"What is 2 + 2? ({KEY})", "--trace", str(tmp_path / "t.jsonl")],
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base,
        LOOPBACK_SERVICE_API_KEY=KEY,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4" and receiver.chats == 3

    spans = receiver.spans()
    assert spans, "no span reached the receiver"
    resource = spans[0][0]
    assert resource["service.name"] == "archon"
    by_name = {span.name: span for _, span in spans}
    root = by_name["archon run"]
    assert _attributes(root.attributes)["archon.pipeline"] == "loop"
    assert {span.trace_id for _, span in spans} == {root.trace_id}
    nodes = {s.span_id: s for _, s in spans if s.parent_span_id == root.span_id}
    assert {s.name for s in nodes.values()} == {"generate drafts", "fuse fuse_1"}
    calls = [s for _, s in spans if s.parent_span_id in nodes]
    assert len(calls) == 3
    for call in calls:
        attributes = _attributes(call.attributes)
        assert call.name == "chat openai/m"
        assert attributes["gen_ai.request.model"] == "openai/m"
        assert attributes["gen_ai.usage.output_tokens"] == 4
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["archon.cache_hit"] is False
        assert not call.events  # no prompts without --show-prompts
    # The prompt tokens of the server's three replies (3 each), however the samples share them.
    assert sum(_attributes(c.attributes)["gen_ai.usage.input_tokens"] for c in calls) == 9
    assert not any(KEY.encode() in body for body in receiver.bodies)


def test_the_flag_turns_export_on_and_prompts_are_opt_in(
    receiver: Receiver, tmp_path: Path
) -> None:
    pipe = _pipe(tmp_path, receiver)
    done = _archon(
        ["run", str(pipe), "-q", f"What is 2 + 2? {KEY}", "--otel", "--show-prompts"],
        tmp_path,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.base}/v1/traces",
        LOOPBACK_SERVICE_API_KEY=KEY,
    )
    assert done.returncode == 0, done.stderr
    calls = [s for _, s in receiver.spans() if s.name.startswith("chat ")]
    assert len(calls) == 3
    events = [e for call in calls for e in call.events]
    assert {e.name for e in events} >= {"gen_ai.user.message", "gen_ai.choice"}
    contents = [_attributes(e.attributes).get("content", "") for e in events]
    assert any("What is 2 + 2? [REDACTED]" in c for c in contents)
    assert not any(KEY.encode() in body for body in receiver.bodies)


def test_without_the_extra_the_flag_says_what_to_install(tmp_path: Path) -> None:
    pipe = tmp_path / "p.pipe"
    pipe.write_text('models { m = "fake/m" }\npipeline p { generate(models = [m]) }\n')
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    # An `opentelemetry.sdk` that cannot be found: a sitecustomize that hides it.
    (blocker / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    done = _archon(["run", str(pipe), "-q", "hi", "--otel"], tmp_path, PYTHONPATH=str(blocker))
    assert done.returncode == 2, done.stderr
    assert "otel" in done.stderr and "archon-pipe[otel]" in done.stderr


def test_archon_eval_exports_a_query_span_per_item(receiver: Receiver, tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, receiver)
    data = tmp_path / "tiny.jsonl"
    data.write_text('{"input": "2 + 2?", "target": "4"}\n{"input": "3 + 1?", "target": "4"}\n')
    done = _archon(
        ["eval", str(pipe), "--dataset", str(data), "--json", "--no-cache"],
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base,
    )
    assert done.returncode == 0, done.stderr
    spans = [span for _, span in receiver.spans()]
    (root,) = [s for s in spans if s.name == "archon eval"]
    queries = [s for s in spans if s.parent_span_id == root.span_id]
    assert sorted(s.name for s in queries) == ["query 0", "query 1"]
    for query in queries:
        nodes = [s for s in spans if s.parent_span_id == query.span_id]
        assert sorted(s.name for s in nodes) == ["fuse fuse_1", "generate drafts"]


def test_archon_search_exports_its_trials(receiver: Receiver, tmp_path: Path) -> None:
    pipe = tmp_path / "space.pipe"
    pipe.write_text(
        f'models {{ m = model("openai/m", api_base = "{receiver.base}/v1") }}\n'
        "pipeline space { generate(models = [m], samples = int(1, 2), max_tokens = 8) vote() }\n"
    )
    data = tmp_path / "tiny.jsonl"
    rows = [{"input": f"{k} + 1?", "target": str(k + 1)} for k in range(8)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["search", str(pipe), "--dataset", str(data), "--trials", "2", "--limit", "2"]
    args += ["--no-cache", "--json", "--otel", "--out", str(tmp_path / "best.pipe")]
    done = _archon(
        args,
        tmp_path,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.base}/v1/traces",
    )
    assert done.returncode == 0, done.stderr
    spans = [span for _, span in receiver.spans()]
    (root,) = [s for s in spans if s.name == "archon search"]
    assert any(s.name == "generate generate_1" for s in spans)
    assert any(s.name == "chat openai/m" for s in spans)
    assert {s.trace_id for s in spans} == {root.trace_id}


def test_archon_serve_continues_the_callers_trace(receiver: Receiver, tmp_path: Path) -> None:
    pipe = tmp_path / "served.pipe"
    pipe.write_text(
        f'models {{ m = model("openai/m", api_base = "{receiver.base}/v1") }}\n'
        "pipeline served { generate(models = [m], samples = 2) vote() }\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(ARCHON_HOME=str(tmp_path / "home"), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base)
    server = subprocess.Popen(
        [sys.executable, "-m", "archon", "serve", str(pipe), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        assert server.stderr is not None
        url = None
        while url is None:
            line = server.stderr.readline()
            assert line, "the server stopped before listening"
            found = re.search(r"listening on (\S+)", line)
            url = found.group(1) if found else None
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        body = {"model": "served", "messages": [{"role": "user", "content": "hi"}]}
        request = urllib.request.Request(
            url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "traceparent": f"00-{trace_id}-{parent_id}-01",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    spans = [span for _, span in receiver.spans()]
    (root,) = [s for s in spans if s.name == "archon serve"]
    assert root.trace_id.hex() == trace_id and root.parent_span_id.hex() == parent_id
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    assert {s.name for s in spans} >= {"query 0", "generate generate_1", "vote vote_1"}
    assert sum(s.name == "chat openai/m" for s in spans) == 2
