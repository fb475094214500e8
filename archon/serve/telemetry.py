"""What a server counts: its metrics, and the per-request trace sink that feeds them.

Every model call of every request reaches :class:`RequestTrace`, which tags the runtime's
:class:`~archon.runtime.CallRecord` with the request id, totals calls and timings per node for
the response's ``usage.archon.nodes``, updates the server's metrics, and forwards the record
to the server's trace sink (``--trace``), if any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from archon.runtime import CallRecord, TraceSink
from archon.serve.metrics import (
    REQUEST_BUCKETS,
    Counter,
    GaugeFunc,
    Histogram,
    MetricsRegistry,
)


class ServeMetrics:
    """The server's instruments (see docs/serve.md for the list)."""

    def __init__(
        self,
        *,
        running: Callable[[], int],
        waiting: Callable[[], int],
        budget_left: Callable[[], dict[str, float]],
    ) -> None:
        self.registry = MetricsRegistry()
        add = self.registry.add
        self.requests = Counter(
            "archon_requests_total", "Chat completion requests answered.", ("model", "status")
        )
        self.request_seconds = Histogram(
            "archon_request_duration_seconds",
            "Time from request to the end of the answer.",
            ("model",),
            REQUEST_BUCKETS,
        )
        self.calls = Counter("archon_model_calls_total", "Model calls made.", ("model",))
        self.call_errors = Counter(
            "archon_model_call_errors_total", "Model calls that failed.", ("model",)
        )
        self.call_seconds = Histogram(
            "archon_model_call_duration_seconds", "Latency of model calls.", ("model",)
        )
        self.cache_hits = Counter(
            "archon_cache_hits_total", "Model calls answered from the cache.", ("model",)
        )
        self.tokens = Counter("archon_tokens_total", "Tokens of model calls.", ("model", "type"))
        self.usd = Counter("archon_cost_usd_total", "USD spent on model calls.", ("model",))
        for metric in (
            self.requests,
            self.request_seconds,
            self.calls,
            self.call_errors,
            self.call_seconds,
            self.cache_hits,
            self.tokens,
            self.usd,
        ):
            add(metric)
        add(
            GaugeFunc(
                "archon_requests_in_flight", "Requests running now.", lambda: [((), running())]
            )
        )
        add(
            GaugeFunc(
                "archon_requests_queued",
                "Requests waiting for a slot.",
                lambda: [((), waiting())],
            )
        )
        add(
            GaugeFunc(
                "archon_budget_remaining",
                "What is left of each server budget limit that is set.",
                lambda: [((k,), v) for k, v in sorted(budget_left().items())],
                ("limit",),
            )
        )

    def render(self) -> str:
        return self.registry.render()

    def observe_request(self, model: str, status: int, seconds: float) -> None:
        self.requests.inc((model, str(status)))
        self.request_seconds.observe((model,), seconds)

    def observe_call(self, record: CallRecord) -> None:
        model = (record.model,)
        if record.cache_hit:
            self.cache_hits.inc(model)
            return
        self.calls.inc(model)
        if record.error is not None:
            self.call_errors.inc(model)
        self.call_seconds.observe(model, record.latency_s)
        if record.tokens_in:
            self.tokens.inc((record.model, "prompt"), record.tokens_in)
        if record.tokens_out:
            self.tokens.inc((record.model, "completion"), record.tokens_out)
        if record.usd:
            self.usd.inc(model, record.usd)


@dataclass
class NodeStats:
    """Calls, cache hits and wall time (first call start to last call end) of one node."""

    calls: int = 0
    cache_hits: int = 0
    start: float = float("inf")
    end: float = 0.0

    def json(self) -> dict[str, float | int]:
        seconds = max(0.0, self.end - self.start) if self.end else 0.0
        return {"calls": self.calls, "cache_hits": self.cache_hits, "seconds": round(seconds, 4)}


@dataclass
class RequestTrace:
    """The trace sink of one request (see the module docstring)."""

    request_id: str
    metrics: ServeMetrics
    sink: TraceSink | None = None
    nodes: dict[str, NodeStats] = field(default_factory=dict)

    @property
    def include_prompts(self) -> bool:
        return self.sink is not None and self.sink.include_prompts

    def record(self, record: CallRecord) -> None:
        stats = self.nodes.setdefault(record.node_id, NodeStats())
        if record.cache_hit:
            stats.cache_hits += 1
        else:
            stats.calls += 1
        stats.start = min(stats.start, record.started_at)
        stats.end = max(stats.end, record.started_at + record.latency_s)
        self.metrics.observe_call(record)
        if self.sink is not None:
            self.sink.record(record.model_copy(update={"request_id": self.request_id}))

    def node_json(self) -> dict[str, dict[str, float | int]]:
        return {node: stats.json() for node, stats in self.nodes.items()}
