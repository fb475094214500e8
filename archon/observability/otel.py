"""OpenTelemetry spans for a run: run -> query -> node -> model call.

:class:`OtelSink` is a trace sink (it takes the runtime's
:class:`~archon.runtime.trace.CallRecord` and :class:`~archon.runtime.trace.StageRecord`, and
the query and node events of :class:`~archon.runtime.events.NodeSink`) that turns one run into
a tree of spans:

- the **run** span (``archon run``, ``archon eval``, one served request ...), under the
  caller's trace when a ``traceparent`` was given (:meth:`Otel.run` ``parent=``);
- a **query** span per query of a multi-query run (``archon.query.index``); a single run's
  nodes sit directly under the run span;
- a **node** span per node (``archon.node.id``, ``archon.node.kind``, its parameters, its
  inputs, ``archon.node.skipped`` when an early exit skipped it);
- a **call** span per single-sample model call, named ``chat MODEL``, with the GenAI semantic
  conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons`` when
  the backend said) and archon's own (``archon.cache_hit``,
  ``archon.cost.usd``, ``archon.sample_index``, ``archon.attempts``, ``archon.error``,
  ``archon.request.id`` for a served request).

Spans carry the times the runtime measured (calls are recorded when they end, with their start
time). Prompts and answers become span events (``gen_ai.<role>.message``, ``gen_ai.choice``)
only when the sink was made with ``include_prompts`` (``--show-prompts``). Every string that
reaches a span -- attributes, event contents, status messages -- passes through the run's
:class:`~archon.runtime.secrets.Redactor`, so a key never does.

OpenTelemetry is imported only when a sink is built; without the ``otel`` extra
:class:`OtelMissing` names it. Export is OTLP over HTTP (protobuf) to
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
is used whole), or ``http://localhost:4318/v1/traces`` when asked for without an endpoint;
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` are
honoured. See docs/observability.md.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archon.errors import ArchonError
from archon.runtime.events import NodeStarted
from archon.runtime.secrets import Redactor
from archon.runtime.trace import CallRecord, NodeRecord, StageRecord

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

INSTRUMENTATION = "archon"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either one set turns export on (the ``otel`` extra must be installed)."""
CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""``true`` puts prompts and answers in span events (the GenAI instrumentations' switch)."""
PARAMS_LIMIT = 4096
"""The longest ``archon.node.params`` JSON kept (longer is cut, marked with ``...``)."""
CONTENT_LIMIT = 65536
"""The longest prompt or answer text put in a span event."""

Attributes = dict[str, Any]


class OtelMissing(ArchonError):
    """OpenTelemetry export was asked for and the ``otel`` extra is not installed."""


def otel_available() -> bool:
    """Whether the ``otel`` extra (the SDK and the OTLP/HTTP exporter) is installed."""
    try:
        return (
            importlib.util.find_spec("opentelemetry.sdk") is not None
            and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
        )
    except ModuleNotFoundError:
        return False


def require_otel() -> None:
    """Raise :class:`OtelMissing` unless the ``otel`` extra is installed."""
    if not otel_available():
        raise OtelMissing(
            "OpenTelemetry export needs the `otel` extra (opentelemetry-sdk and"
            " opentelemetry-exporter-otlp-proto-http): pip install 'archon-pipe[otel]'"
            " (or scripts/install.sh local,otel)"
        )


def otel_requested(flag: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Whether spans should be exported: the flag, or an OTLP endpoint in the environment."""
    env = os.environ if environ is None else environ
    return flag or any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def content_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for prompts and answers in spans
    (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``)."""
    env = os.environ if environ is None else environ
    return env.get(CONTENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _provider_name(model: str) -> str | None:
    """``openai`` for ``openai/gpt-4o``; None for a model string without a provider."""
    head, sep, _ = model.partition("/")
    return head if sep and head else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Open:
    """A span still open, and the latest end time of what it holds (for spans ended late)."""

    span: Span
    context: Context
    last_ns: int
    explicit: bool = True


class Otel:
    """A tracer provider and the run's redaction settings: one :class:`OtelSink` per run.

    Args:
        provider: where spans go (an SDK ``TracerProvider`` with its processors).
        redactor: applied to every string put on a span.
        include_prompts: put prompts and answers in span events.
        owns_provider: :meth:`shutdown` flushes and shuts the provider down.
    """

    def __init__(
        self,
        provider: TracerProvider,
        *,
        redactor: Redactor | None = None,
        include_prompts: bool = False,
        owns_provider: bool = True,
    ) -> None:
        self.provider = provider
        self.redactor = redactor if redactor is not None else Redactor.from_environ()
        self.include_prompts = include_prompts
        self._owns = owns_provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION, _version())

    @classmethod
    def to_otlp(
        cls,
        *,
        endpoint: str | None = None,
        redactor: Redactor | None = None,
        include_prompts: bool = False,
        service_name: str | None = None,
    ) -> Otel:
        """Export over OTLP/HTTP: to ``endpoint`` (a full ``.../v1/traces`` URL), else where
        the ``OTEL_EXPORTER_OTLP_*`` variables say, else ``localhost:4318``.

        Raises:
            OtelMissing: the ``otel`` extra is not installed.
        """
        require_otel()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes: dict[str, str] = {"service.version": _version()}
        if service_name is not None or not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = service_name or "archon"
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider, redactor=redactor, include_prompts=include_prompts)

    def run(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        parent: Mapping[str, str] | None = None,
        started_at: float | None = None,
        owns: bool = False,
        redactor: Redactor | None = None,
    ) -> OtelSink:
        """A sink for one run, whose root span is named ``name``.

        Args:
            attributes: extra attributes of the run span (``archon.pipeline`` ...).
            parent: HTTP headers (or any carrier) holding a W3C ``traceparent`` (and
                ``tracestate``): the run continues that trace.
            started_at: the run's start (default: now).
            owns: closing the sink also shuts this ``Otel`` down (one-run commands).
            redactor: this run's redactor (default: the one given to ``Otel``), e.g. the
                run environment's, which also hides a server's API key.
        """
        return OtelSink(self, name, attributes or {}, parent, started_at, owns, redactor)

    def shutdown(self) -> None:
        """Export what is left and stop (only when this object owns its provider)."""
        if self._owns:
            self.provider.shutdown()

    def force_flush(self) -> None:
        self.provider.force_flush()


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The trace context a caller sent (W3C ``traceparent``/``tracestate`` headers); an
    empty context when there is none or it is malformed."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier=headers)


class OtelSink:
    """A trace sink that builds the spans of one run (see the module docstring).

    Thread-safe; the runtime calls it from the event loop thread. :meth:`close` ends the
    spans still open (a query or node that never reported its end) and the run span.
    """

    def __init__(
        self,
        otel: Otel,
        name: str,
        attributes: Mapping[str, Any],
        parent: Mapping[str, str] | None,
        started_at: float | None,
        owns: bool,
        redactor: Redactor | None = None,
    ) -> None:
        from opentelemetry import trace

        self._otel = otel
        self._redactor = redactor if redactor is not None else otel.redactor
        self._owns = owns
        self._lock = threading.Lock()
        self._closed = False
        self._queries: dict[int, _Open] = {}
        self._nodes: dict[tuple[int | None, str], _Open] = {}
        self._params: dict[int, tuple[object, Attributes]] = {}
        self.error: str | None = None
        start = _ns(time.time() if started_at is None else started_at)
        context = context_from_headers(parent) if parent else None
        kind = trace.SpanKind.SERVER if parent else trace.SpanKind.INTERNAL
        span = otel.tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=self._attributes(attributes),
            start_time=start,
        )
        self._run = _Open(span, trace.set_span_in_context(span, context), start)

    # -- the TraceSink protocol ------------------------------------------------------------

    @property
    def include_prompts(self) -> bool:
        return self._otel.include_prompts

    @property
    def trace_id(self) -> str:
        """The run's trace id, 32 hex digits (what a backend's search box takes)."""
        return f"{self._run.span.get_span_context().trace_id:032x}"

    def record(self, record: CallRecord) -> None:
        start = _ns(record.started_at or (time.time() - record.latency_s))
        end = start + _ns(record.latency_s)
        attributes: Attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _provider_name(record.model),
            "gen_ai.request.model": record.model,
            "gen_ai.usage.input_tokens": record.tokens_in,
            "gen_ai.usage.output_tokens": record.tokens_out,
            "gen_ai.response.finish_reasons": (
                (record.finish_reason,) if record.finish_reason else None
            ),
            "archon.request.id": record.request_id,
            "archon.node.id": record.node_id,
            "archon.query.index": record.query_index,
            "archon.sample_index": record.sample_index,
            "archon.cache_hit": record.cache_hit,
            "archon.cost.usd": record.usd,
            "archon.attempts": record.attempts,
            "archon.prompt.sha256": record.prompt_sha256,
            "archon.error": record.error,
        }
        with self._lock:
            if self._closed:
                return
            parent = self._node_for(record.query_index, record.node_id, start)
            parent.last_ns = max(parent.last_ns, end)
            self._touch(record.query_index, end)
            span = self._otel.tracer.start_span(
                f"chat {self._redactor.redact(record.model)}",
                context=parent.context,
                kind=_client_kind(),
                attributes=self._attributes(attributes),
                start_time=start,
            )
        if self.include_prompts:
            self._prompt_events(span, record, start, end)
        if record.error is not None:
            _set_error(span, self._redactor.redact(record.error))
        span.end(end_time=end)

    def record_stage(self, record: StageRecord) -> None:
        attributes: Attributes = {
            "archon.node.id": record.node_id,
            "archon.exit": record.exit,
            "archon.exit.reason": record.reason,
            "archon.exit.skipped": record.skipped or None,
        }
        with self._lock:
            if self._closed:
                return
            holder = self._query_for(record.query_index, None)
            holder.span.add_event("archon.stage", self._attributes(attributes))

    # -- the NodeSink protocol -------------------------------------------------------------

    def query_started(self, query_index: int | None, at: float) -> None:
        with self._lock:
            if not self._closed and query_index is not None:
                self._query_for(query_index, _ns(at))

    def query_finished(self, query_index: int | None, at: float, error: str | None) -> None:
        end = _ns(at)
        with self._lock:
            if self._closed:
                return
            self._end_nodes_of(query_index, end)
            if query_index is None:
                self._run.last_ns = max(self._run.last_ns, end)
                if error is not None:
                    self.error = error
                return
            query = self._queries.pop(query_index, None)
            if query is None:
                return
            if error is not None:
                query.span.set_attributes(self._attributes({"archon.error": error}))
                _set_error(query.span, self._redactor.redact(error))
            query.span.end(end_time=max(end, query.last_ns))
            self._run.last_ns = max(self._run.last_ns, end)

    def node_started(self, event: NodeStarted) -> None:
        start = _ns(event.started_at)
        attributes: Attributes = {
            "archon.node.id": event.node_id,
            "archon.node.kind": event.kind,
            "archon.query.index": event.query_index,
            "archon.node.inputs": event.inputs or None,
            "archon.node.waits_for": event.waits_for or None,
        }
        with self._lock:
            if self._closed:
                return
            attributes.update(self._params_of(event))
            key = (event.query_index, event.node_id)
            stale = self._nodes.pop(key, None)  # the same node of an earlier run (search)
            if stale is not None:
                stale.span.end(end_time=stale.last_ns)
            parent = self._query_for(event.query_index, start)
            self._nodes[key] = self._start(
                f"{event.kind} {event.node_id}", parent, start, attributes
            )

    def node_finished(self, record: NodeRecord) -> None:
        end = _ns(record.finished_at)
        with self._lock:
            if self._closed:
                return
            key = (record.query_index, record.node_id)
            node = self._nodes.pop(key, None)
            if node is None:
                parent = self._query_for(record.query_index, _ns(record.started_at))
                attributes: Attributes = {
                    "archon.node.id": record.node_id,
                    "archon.node.kind": record.kind,
                    "archon.query.index": record.query_index,
                    "archon.node.inputs": record.inputs or None,
                    "archon.node.waits_for": record.waits_for or None,
                }
                name = f"{record.kind} {record.node_id}"
                node = self._start(name, parent, _ns(record.started_at), attributes)
            if record.skipped:
                node.span.set_attributes({"archon.node.skipped": True})
            if record.error is not None:
                node.span.set_attributes(self._attributes({"archon.error": record.error}))
                _set_error(node.span, self._redactor.redact(record.error))
            node.span.end(end_time=max(end, node.last_ns))
            self._touch(record.query_index, end)

    # -- the end ---------------------------------------------------------------------------

    def close(self, error: str | None = None) -> None:
        """End every open span and the run span (``error``: the run failed); idempotent.
        With ``owns``, also flush and shut the exporter down."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            now = _ns(time.time())
            for node in self._nodes.values():
                node.span.end(end_time=max(now, node.last_ns) if node.explicit else node.last_ns)
            self._nodes.clear()
            for query in self._queries.values():
                query.span.end(end_time=query.last_ns)
            self._queries.clear()
            error = error if error is not None else self.error
            if error is not None:
                self._run.span.set_attributes(self._attributes({"archon.error": error}))
                _set_error(self._run.span, self._redactor.redact(error))
            self._run.span.end(end_time=max(now, self._run.last_ns))
        if self._owns:
            self._otel.shutdown()

    def __enter__(self) -> OtelSink:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(None if exc is None else (str(exc) or type(exc).__name__))

    # -- helpers (called with the lock held) -----------------------------------------------

    def _start(self, name: str, parent: _Open, start: int, attributes: Attributes) -> _Open:
        from opentelemetry import trace

        span = self._otel.tracer.start_span(
            self._redactor.redact(name),
            context=parent.context,
            attributes=self._attributes(attributes),
            start_time=start,
        )
        return _Open(span, trace.set_span_in_context(span, parent.context), start)

    def _query_for(self, query_index: int | None, start: int | None) -> _Open:
        """The span a node of ``query_index`` sits under (the run span for None)."""
        if query_index is None:
            return self._run
        query = self._queries.get(query_index)
        if query is None:
            at = self._run.last_ns if start is None else start
            query = self._start(
                f"query {query_index}", self._run, at, {"archon.query.index": query_index}
            )
            self._queries[query_index] = query
        return query

    def _node_for(self, query_index: int | None, node_id: str, start: int) -> _Open:
        """The node span a call belongs to; one is opened from the calls when the runtime
        sends no node events (it is ended after its last call, at the query's end)."""
        node = self._nodes.get((query_index, node_id))
        if node is None:
            parent = self._query_for(query_index, start)
            attributes = {"archon.node.id": node_id, "archon.query.index": query_index}
            node = self._start(f"node {node_id}", parent, start, attributes)
            node.explicit = False
            self._nodes[(query_index, node_id)] = node
        return node

    def _touch(self, query_index: int | None, end: int) -> None:
        self._run.last_ns = max(self._run.last_ns, end)
        if query_index is not None and query_index in self._queries:
            query = self._queries[query_index]
            query.last_ns = max(query.last_ns, end)

    def _end_nodes_of(self, query_index: int | None, end: int) -> None:
        """End the node spans of a finished query that are still open (opened from calls,
        or left open by a cancellation)."""
        for key in [k for k in self._nodes if k[0] == query_index]:
            node = self._nodes.pop(key)
            node.span.end(end_time=node.last_ns if not node.explicit else end)

    def _params_of(self, event: NodeStarted) -> Attributes:
        """``archon.node.params`` (JSON) and ``archon.node.param.NAME`` for plain values;
        computed once per parameter object (every query of a run shares it)."""
        if event.params is None:
            return {}
        key = id(event.params)
        held = self._params.get(key)
        if held is not None and held[0] is event.params:
            return held[1]
        try:
            dumped = event.params.model_dump(mode="json")
        except Exception:  # a parameter model that cannot be dumped: leave it out
            dumped = {}
        found: Attributes = {
            "archon.node.params": _cut(json.dumps(dumped, sort_keys=True), PARAMS_LIMIT)
        }
        for name, value in dumped.items():
            if _plain(value):
                found[f"archon.node.param.{name}"] = value
        self._params[key] = (event.params, found)
        return found

    def _attributes(self, attributes: Mapping[str, Any]) -> Attributes:
        """Attributes with None left out and every string redacted."""
        clean: Attributes = {}
        for name, value in attributes.items():
            if value is None:
                continue
            clean[name] = self._clean(value)
        return clean

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, Sequence):
            items = [self._clean(v) for v in value if v is not None]
            if items and all(isinstance(v, str) for v in items):
                return items
            if items and all(isinstance(v, bool | int | float) for v in items):
                return items
            return self._redactor.redact(json.dumps(list(value), default=str))
        return self._redactor.redact(json.dumps(value, default=str, sort_keys=True))

    def _prompt_events(self, span: Span, record: CallRecord, start: int, end: int) -> None:
        for message in record.prompt or ():
            span.add_event(
                f"gen_ai.{message.role}.message",
                {"content": self._content(message.content)},
                timestamp=start,
            )
        if record.output is not None:
            choice: Attributes = {
                "index": record.sample_index,
                "content": self._content(record.output),
            }
            if record.finish_reason:
                choice["finish_reason"] = record.finish_reason
            span.add_event("gen_ai.choice", choice, timestamp=end)

    def _content(self, text: str) -> str:
        return _cut(self._redactor.redact(text), CONTENT_LIMIT)


def _plain(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= 256
    if isinstance(value, bool | int | float):
        return True
    if isinstance(value, list) and value:
        kinds = {type(v) for v in value}
        return len(kinds) == 1 and kinds <= {str, int, float, bool} and len(value) <= 32
    return False


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def _set_error(span: Span, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, message))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("archon-pipe")
    except PackageNotFoundError:
        return "0"
