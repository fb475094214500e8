"""Answering a chat request with a served pipeline: the part of the server without HTTP.

One :class:`Engine` holds what all requests share -- the run environment
(:class:`~archon.runtime.RunEnv`: the model client, one :class:`~archon.runtime.Limits`, the
registry, the call cache, the trace sink, the redactor), the server budget and the metrics --
and runs each request's ``n`` choices concurrently with
:func:`archon.runtime.run`, each with its own seed (choice ``i`` gets
``derive_seed(seed, i)``; choice 0 keeps the seed itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from archon.errors import ArchonError
from archon.ir import Pipeline
from archon.runtime import (
    BudgetExceeded,
    Meter,
    RunEnv,
    RunResult,
    StreamTap,
    TraceSink,
    run,
)
from archon.runtime.context import derive_seed
from archon.runtime.events import fan_out
from archon.serve.budget import ServerBudget
from archon.serve.chat import ChatRequest
from archon.serve.errors import ApiError, error_for
from archon.serve.pipelines import ServedPipeline
from archon.serve.telemetry import RequestTrace, ServeMetrics
from archon.values import Usage

if TYPE_CHECKING:  # the `otel` extra is optional: only a server given one imports it
    from archon.observability.otel import Otel

TRACE_HEADERS = ("traceparent", "tracestate")
"""The W3C trace-context headers a request's spans continue (nothing else is read)."""


@dataclass(frozen=True)
class ServeSettings:
    """How a server treats requests.

    Attributes:
        max_concurrency: requests running at once.
        queue: requests waiting for a slot; more are refused with 429.
        seed: the seed of requests that send none (identical requests then get identical,
            cacheable answers; send ``seed`` to vary them).
        keepalive_s: a stream sends an SSE comment after this long without output.
        max_n: the largest ``n`` accepted.
        client_sampling: let ``temperature``/``top_p``/``max_tokens`` override a direct
            pipeline's answer call (see :mod:`archon.serve.pipelines`).
        api_key: the bearer token clients must send (None: no authentication).
        header_timeout_s: a connection must send complete request headers within this
            long (of opening, or of the first byte of a further request); else it is closed.
        body_timeout_s: a request body must arrive within this long; else 408.
        max_connections: connections open at once (lowered to fit the process's
            file-descriptor limit); one more closes the longest-waiting connection that is
            not running a request, and is itself closed only when every one is.
    """

    max_concurrency: int = 64
    queue: int = 256
    seed: int = 0
    keepalive_s: float = 10.0
    max_n: int = 16
    client_sampling: bool = True
    api_key: str | None = field(default=None, repr=False)
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 512


class Listener(Protocol):
    """Receives a request's output as it is produced (streaming)."""

    def on_text(self, choice: int, text: str) -> None:
        """A piece of choice ``choice``'s answer, while its answer call runs."""
        ...

    def on_result(self, choice: int, result: RunResult) -> None:
        """Choice ``choice`` has finished."""
        ...


@dataclass(frozen=True)
class Answer:
    """The outcome of one request: a result per choice and what they cost together."""

    request_id: str
    model: str
    fingerprint: str
    results: tuple[RunResult, ...]
    usage: Usage
    seconds: float
    seeds: tuple[int, ...]
    nodes: Mapping[str, Mapping[str, float | int]]
    ignored: tuple[str, ...]

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.results)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for r in self.results for w in r.warnings))


class Engine:
    """Runs requests against the served pipelines (see the module docstring)."""

    def __init__(
        self,
        pipelines: Sequence[ServedPipeline],
        env: RunEnv,
        *,
        settings: ServeSettings,
        budget: ServerBudget,
        metrics: ServeMetrics,
        otel: Otel | None = None,
    ) -> None:
        self.pipelines = {p.name: p for p in pipelines}
        self.env = env
        self.settings = settings
        self.budget = budget
        self.metrics = metrics
        self.otel = otel

    def api_error(self, error: ArchonError) -> ApiError:
        """The client-facing error of a failed request."""
        return error_for(
            error,
            server_retry_after_s=self.budget.retry_after_s(),
            server_final=self.budget.final,
        )

    async def answer(
        self,
        chat: ChatRequest,
        request_id: str,
        listener: Listener | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Run ``chat``'s choices; raise the runtime's errors (BudgetExceeded, NodeFailed...).

        With OpenTelemetry on, the request is one ``archon serve`` span (its choices, nodes
        and calls below it) that continues the trace of the ``traceparent`` in ``headers``.
        """
        served = self.pipelines[chat.model]
        pipeline, ignored = served.for_request(chat.sampling, self.settings.client_sampling)
        self.budget.check()
        spans = None
        if self.otel is not None:
            carrier = {k: headers[k] for k in TRACE_HEADERS if headers and k in headers}
            attributes = {
                "archon.command": "serve",
                "archon.pipeline": served.name,
                "archon.request.id": request_id,
                "gen_ai.request.model": chat.model,
            }
            spans = self.otel.run(
                "archon serve", attributes, parent=carrier, redactor=self.env.redactor
            )
        failure: str | None = "cancelled"
        try:
            answer = await self._answer(
                chat, request_id, listener, served, pipeline, ignored, spans
            )
            failure = None
            return answer
        except Exception as error:
            failure = str(error) or type(error).__name__
            raise
        finally:
            if spans is not None:
                spans.close(failure)

    async def _answer(
        self,
        chat: ChatRequest,
        request_id: str,
        listener: Listener | None,
        served: ServedPipeline,
        pipeline: Pipeline,
        ignored: tuple[str, ...],
        spans: TraceSink | None,
    ) -> Answer:
        meter = Meter(chat.budget, scope="request", parent=self.budget.meter())
        trace = RequestTrace(request_id, self.metrics, self.env.trace)
        base = chat.seed if chat.seed is not None else self.settings.seed
        seeds = tuple(derive_seed(base, i) for i in range(chat.n))
        tap_node = served.answer_node if chat.stream and listener is not None else None
        env = self.env.replace(trace=fan_out(trace, spans))
        started = time.perf_counter()

        async def one(choice: int) -> RunResult:
            tap = None
            if tap_node is not None and listener is not None:
                tap = StreamTap(tap_node, partial(listener.on_text, choice))
            result = await run(
                pipeline,
                chat.messages,
                env.replace(seed=seeds[choice]),
                budget=meter,
                stream_tap=tap,
                query_index=choice,
            )
            if listener is not None:
                listener.on_result(choice, result)
            return result

        results = await _within(chat.budget.seconds, meter, _all(one, chat.n))
        return Answer(
            request_id=request_id,
            model=served.name,
            fingerprint=served.fingerprint,
            results=results,
            usage=meter.spent,
            seconds=time.perf_counter() - started,
            seeds=seeds,
            nodes=trace.node_json(),
            ignored=tuple(dict.fromkeys((*ignored, *chat.ignored))),
        )


async def _all(
    one: Callable[[int], Coroutine[Any, Any, RunResult]], n: int
) -> tuple[RunResult, ...]:
    """Every choice, concurrently; the first failure cancels the others and is raised."""
    if n == 1:
        return (await one(0),)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(n)]
    except BaseExceptionGroup as failures:
        first: BaseException = failures
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return tuple(task.result() for task in tasks)


async def _within(
    seconds: float | None, meter: Meter, work: Awaitable[tuple[RunResult, ...]]
) -> tuple[RunResult, ...]:
    """``work`` under the request's ``max_seconds`` (BudgetExceeded when it runs out)."""
    if seconds is None:
        return await work
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError as error:
        raise BudgetExceeded("seconds", "request", seconds, meter.spent, meter.seconds) from error
