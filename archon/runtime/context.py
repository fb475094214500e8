"""The runtime's :class:`~archon.layers.base.LayerContext`: the one door from a layer to a model.

``NodeContext.complete`` turns a request for ``n`` samples into ``n`` single-sample calls
(run concurrently; sample ``i`` gets a seed derived from the request's seed, or the run seed,
and ``i``), and for each one applies, in order:

cache lookup -> budget reservation -> limits (slots, timeout, retries) -> client ->
budget settlement -> cache store -> trace record.

A cache hit is free: it is neither metered nor counted as a call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archon.layers.base import BudgetLeft
from archon.runtime.budget import Meter, Reservation, estimate_prompt_tokens
from archon.runtime.cache import ScopedClient, key_of, key_request
from archon.runtime.clients.base import (
    ModelCallError,
    MultiSampleClient,
    Price,
    PricedClient,
    StreamingClient,
)
from archon.runtime.env import RunEnv
from archon.runtime.http import post_json
from archon.runtime.streaming import StreamTap, stream_call
from archon.runtime.trace import CallRecord
from archon.values import (
    Completion,
    CompletionRequest,
    CompletionResponse,
    Message,
    TestCase,
    Usage,
)

if TYPE_CHECKING:
    from archon.sandbox import CallsReport, SandboxReport

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 4096
"""Completion-token bound reserved for a request that sets no ``max_tokens``."""


def derive_seed(seed: int, index: int) -> int:
    """The seed of sample ``index``: ``seed`` itself for sample 0, a stable mix otherwise."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def prompt_sha256(messages: tuple[Message, ...]) -> str:
    """Hash identifying a prompt in traces without storing its text."""
    data = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def split_usage(total: Usage, k: int) -> list[Usage]:
    """``total`` (of one request with ``k`` choices) as ``k`` per-sample shares that add up.

    The prompt was evaluated once, so its tokens go to the first share; completion tokens and
    cost are split evenly (servers do not report them per choice), the remainder to the first.
    Each share counts one call.
    """
    tokens, extra = divmod(total.completion_tokens, k)
    return [
        Usage(
            calls=1,
            prompt_tokens=total.prompt_tokens if i == 0 else 0,
            completion_tokens=tokens + (extra if i == 0 else 0),
            usd=total.usd / k,
        )
        for i in range(k)
    ]


@dataclass
class QueryState:
    """What the calls of one query share: the run's :class:`~archon.runtime.env.RunEnv`
    (held whole, not copied) and the query's own meter, messages and counters. Built by the
    executor, one per query."""

    env: RunEnv
    meter: Meter
    query: tuple[Message, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    query_index: int | None = None
    stream_tap: StreamTap | None = None
    cache_hits: int = 0
    warnings: list[str] = field(default_factory=list)
    _prices: dict[str, Price | None] = field(default_factory=dict)
    _usd_limited: bool | None = None

    def resolve_model(self, name: str) -> str:
        """A model alias of the pipeline's ``models`` block -> its model string."""
        return self.aliases.get(name, name)

    def usd_limited(self) -> bool:
        if self._usd_limited is None:
            meter: Meter | None = self.meter
            limited = False
            while meter is not None:
                limited = limited or meter.budget.usd is not None
                meter = meter.parent
            self._usd_limited = limited
        return self._usd_limited

    def price(self, model: str) -> Price | None:
        if model not in self._prices:
            client = self.env.client
            self._prices[model] = client.price(model) if isinstance(client, PricedClient) else None
            if self._prices[model] is None and self.usd_limited():
                self.warnings.append(
                    f"no price known for {model}: the usd budget is checked after each of its"
                    " calls instead of before (give prices in the models block)"
                )
        return self._prices[model]


class NodeContext:
    """The :class:`~archon.layers.base.LayerContext` given to one node of one query."""

    def __init__(self, state: QueryState, node_id: str) -> None:
        self._state = state
        self._node_id = node_id
        self._rng: random.Random | None = None

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def query(self) -> tuple[Message, ...]:
        return self._state.query

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            digest = hashlib.sha256(f"{self._state.env.seed}:{self._node_id}".encode()).digest()
            self._rng = random.Random(int.from_bytes(digest[:8], "big"))
        return self._rng

    def warn(self, message: str) -> None:
        text = f"{self._node_id}: {self._state.env.redactor.redact(message)}"
        logger.warning("%s", text)
        self._state.warnings.append(text)

    def budget_left(self) -> BudgetLeft:
        """The room left in the tightest scope of each limit (spent and held count)."""
        return budget_left(self._state.meter)

    async def http_json(self, url: str, body: Mapping[str, object]) -> object:
        """POST JSON to a non-model service under the limits (slot, timeout, retries)."""
        state = self._state
        state.meter.check_time()
        return await state.env.limits.call(f"http:{url}", lambda: post_json(url, body))

    # The sandbox module is imported (and its functions looked up) per run: a pipeline that
    # runs no program never loads it, and tests may stand in for its functions.
    async def run_tests(
        self, code: str, tests: Sequence[str | TestCase], *, timeout_s: float, memory_mb: int
    ) -> SandboxReport:
        """Run ``code`` against ``tests`` in the sandbox, holding a sandbox slot of the limits."""
        from archon import sandbox

        return await self._state.env.limits.run_code(
            lambda: sandbox.run_tests(code, tests, timeout_s=timeout_s, memory_mb=memory_mb)
        )

    async def run_calls(
        self, code: str, calls: Sequence[str], *, timeout_s: float, memory_mb: int
    ) -> CallsReport:
        """Evaluate ``calls`` on ``code`` in the sandbox, holding a sandbox slot."""
        from archon import sandbox

        return await self._state.env.limits.run_code(
            lambda: sandbox.run_calls(code, calls, timeout_s=timeout_s, memory_mb=memory_mb)
        )

    async def run_stdio(
        self, code: str, inputs: Sequence[str], *, timeout_s: float, memory_mb: int
    ) -> CallsReport:
        """Run ``code`` once per stdin text in the sandbox, holding a sandbox slot."""
        from archon import sandbox

        return await self._state.env.limits.run_code(
            lambda: sandbox.run_stdio(code, inputs, timeout_s=timeout_s, memory_mb=memory_mb)
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Sample ``request.n`` completions, each cached, budgeted, limited and traced."""
        state = self._state
        model = state.resolve_model(request.model)
        base_seed = request.seed if request.seed is not None else state.env.seed
        single = request.model_copy(update={"n": 1, "model": model, "seed": base_seed})
        if request.n == 1:
            return await self._sample(single, 0)
        client = state.env.client
        if isinstance(client, MultiSampleClient) and client.batches_samples(model):
            return await self._samples_in_one_request(client, single, request.n)
        responses: list[asyncio.Task[CompletionResponse]] = []
        try:
            async with asyncio.TaskGroup() as group:
                responses = [group.create_task(self._sample(single, i)) for i in range(request.n)]
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None
        results = [task.result() for task in responses]
        return CompletionResponse(
            completions=tuple(r.completions[0] for r in results),
            usage=sum((r.usage for r in results if not r.cached), Usage()),
            cached=all(r.cached for r in results),
        )

    def _upper_bound(
        self, request: CompletionRequest, samples: int
    ) -> tuple[Price | None, Reservation]:
        """The model's price (when a USD budget needs it) and what ``samples`` samples of
        ``request`` may spend at most: the prompt once, ``max_tokens`` per sample."""
        state = self._state
        price = state.price(request.model) if state.usd_limited() else None
        out = samples * (request.max_tokens or DEFAULT_MAX_TOKENS)
        tokens_in = estimate_prompt_tokens(request.messages)
        usd = price.cost(Usage(prompt_tokens=tokens_in, completion_tokens=out)) if price else 0.0
        return price, Reservation(samples, tokens_in + out, usd)

    async def _cache_key(
        self, single: CompletionRequest, index: int, base_seed: int
    ) -> tuple[str, str | None]:
        """The cache key of sample ``index``, scoped by the client (the scope -- endpoint,
        model file, backend version -- keeps answers of different servers or files apart even
        when they share a model name), and the request text it hashes, or None when that text
        holds a secret value (it is then never stored)."""
        client, scope = self._state.env.client, ""
        if isinstance(client, ScopedClient):
            scope = await client.cache_scope(single.model)
        text = key_request(single, index, base_seed, scope)
        stored = text if self._state.env.redactor.redact(text) == text else None
        return key_of(text), stored

    async def _samples_in_one_request(
        self, client: MultiSampleClient, single: CompletionRequest, n: int
    ) -> CompletionResponse:
        """Samples ``0..n-1``: cache hits as usual, every miss in one ``n``-choice request."""
        state = self._state
        base_seed = single.seed if single.seed is not None else state.env.seed
        seeds = tuple(derive_seed(base_seed, i) for i in range(n))
        keys = [
            await self._cache_key(single, i, base_seed)
            if state.env.cache is not None
            else ("", None)
            for i in range(n)
        ]
        results: dict[int, CompletionResponse] = {}
        for i in range(n):
            hit = state.env.cache.get(*keys[i]) if state.env.cache is not None else None
            if hit is not None and hit.completions:
                state.cache_hits += 1
                self._trace(
                    single.model_copy(update={"seed": seeds[i]}), i, hit, 0.0, cache_hit=True
                )
                results[i] = hit
        misses = [i for i in range(n) if i not in results]
        if len(misses) == 1:
            results[misses[0]] = await self._sample(single, misses[0])
        elif misses:
            fresh = await self._request_samples(client, single, misses, seeds, keys)
            results.update(zip(misses, fresh, strict=True))
        ordered = [results[i] for i in range(n)]
        return CompletionResponse(
            completions=tuple(r.completions[0] for r in ordered),
            usage=sum((r.usage for r in ordered if not r.cached), Usage()),
            cached=all(r.cached for r in ordered),
        )

    async def _request_samples(
        self,
        client: MultiSampleClient,
        single: CompletionRequest,
        indices: list[int],
        seeds: tuple[int, ...],
        keys: list[tuple[str, str | None]],
    ) -> list[CompletionResponse]:
        """One request for the samples ``indices``; usage metered once, results split."""
        state = self._state
        k = len(indices)
        first = single.model_copy(update={"seed": seeds[indices[0]]})
        price, bound = self._upper_bound(first, k)
        held = await state.meter.reserve(bound)
        sample_seeds = tuple(seeds[i] for i in indices)
        started = time.perf_counter()
        try:
            response = await state.env.limits.call(
                first.model, lambda: client.complete_samples(first, sample_seeds)
            )
            if len(response.completions) != k:
                raise ModelCallError(
                    f"{first.model}: asked for {k} samples, got {len(response.completions)}",
                    model=first.model,
                )
        except BaseException as error:
            state.meter.settle(held, Usage(calls=1))
            if isinstance(error, Exception):
                message = state.env.redactor.redact(str(error))
                self._trace(first, indices[0], None, time.perf_counter() - started, error=message)
            raise
        latency = time.perf_counter() - started
        total = response.usage
        if price is not None and total.usd == 0.0:
            total = total.model_copy(update={"usd": price.cost(total)})
        state.meter.settle(held, total.model_copy(update={"calls": k}))
        shares = split_usage(total, k)
        out: list[CompletionResponse] = []
        for position, index in enumerate(indices):
            one = CompletionResponse(
                completions=(response.completions[position],), usage=shares[position]
            )
            if state.env.cache is not None:
                key, text = keys[index]
                state.env.cache.put(key, first.model, self._for_storage(one), text)
            self._trace(single.model_copy(update={"seed": seeds[index]}), index, one, latency)
            out.append(one)
        return out

    async def _sample(self, single: CompletionRequest, index: int) -> CompletionResponse:
        state = self._state
        base_seed = single.seed if single.seed is not None else state.env.seed
        request = (
            single
            if index == 0
            else single.model_copy(update={"seed": derive_seed(base_seed, index)})
        )
        key, text = "", None
        if state.env.cache is not None:
            key, text = await self._cache_key(single, index, base_seed)
            hit = state.env.cache.get(key, text)
            if hit is not None and hit.completions:
                state.cache_hits += 1
                self._trace(request, index, hit, 0.0, cache_hit=True)
                return hit
        model = request.model
        price, bound = self._upper_bound(request, 1)
        held = await state.meter.reserve(bound)
        attempts = 1

        def count_retry(attempt: int, error: ModelCallError) -> None:
            nonlocal attempts
            attempts = attempt + 1

        started = time.perf_counter()
        try:
            response = await state.env.limits.call(
                model, self._call(request, index), on_retry=count_retry
            )
        except BaseException as error:
            state.meter.settle(held, Usage(calls=1))
            if isinstance(error, Exception):
                self._trace(
                    request,
                    index,
                    None,
                    time.perf_counter() - started,
                    attempts=attempts,
                    error=state.env.redactor.redact(str(error)),
                )
            raise
        latency = time.perf_counter() - started
        usage = response.usage
        if usage.calls != 1 or (price is not None and usage.usd == 0.0):
            usd_cost = usage.usd if usage.usd or price is None else price.cost(usage)
            usage = usage.model_copy(update={"calls": 1, "usd": usd_cost})
            response = response.model_copy(update={"usage": usage})
        state.meter.settle(held, usage)
        if state.env.cache is not None:
            state.env.cache.put(key, model, self._for_storage(response), text)
        self._trace(request, index, response, latency, attempts=attempts)
        return response

    def _call(
        self, request: CompletionRequest, index: int
    ) -> Callable[[], Awaitable[CompletionResponse]]:
        """One attempt of the call: streamed when this node's answer is tapped."""
        client, tap = self._state.env.client, self._state.stream_tap
        if (
            tap is not None
            and tap.node_id == self._node_id
            and index == 0
            and isinstance(client, StreamingClient)
        ):
            return lambda: stream_call(client, request, tap)
        return lambda: client.complete(request)

    def _for_storage(self, response: CompletionResponse) -> CompletionResponse:
        redactor = self._state.env.redactor
        if not redactor.values:
            return response
        completions = tuple(
            c.model_copy(update={"text": redactor.redact_values(c.text)})
            for c in response.completions
        )
        return response.model_copy(update={"completions": completions})

    def _trace(
        self,
        request: CompletionRequest,
        index: int,
        response: CompletionResponse | None,
        latency: float,
        *,
        cache_hit: bool = False,
        attempts: int = 1,
        error: str | None = None,
    ) -> None:
        sink = self._state.env.trace
        if sink is None:
            return
        redactor = self._state.env.redactor
        usage = response.usage if response is not None else Usage()
        first: Completion | None = response.completions[0] if response is not None else None
        prompt = None
        output = None
        if sink.include_prompts:
            prompt = tuple(
                m.model_copy(update={"content": redactor.redact(m.content)})
                for m in request.messages
            )
            output = redactor.redact(first.text) if first is not None else None
        sink.record(
            CallRecord(
                node_id=self._node_id,
                model=request.model,
                sample_index=index,
                prompt_sha256=prompt_sha256(request.messages),
                tokens_in=usage.prompt_tokens,
                tokens_out=usage.completion_tokens,
                latency_s=latency,
                usd=0.0 if cache_hit else usage.usd,
                cache_hit=cache_hit,
                attempts=attempts,
                error=error,
                query_index=self._state.query_index,
                started_at=time.time() - latency,
                finish_reason=first.finish_reason if first is not None else None,
                prompt=prompt,
                output=output,
            )
        )


def budget_left(meter: Meter) -> BudgetLeft:
    """What ``meter`` and its parents still allow: for each limit, the least room left."""
    calls: int | None = None
    tokens: int | None = None
    usd: float | None = None
    seconds: float | None = None
    scope: Meter | None = meter
    while scope is not None:
        budget, spent, held = scope.budget, scope.spent, scope.held
        if budget.calls is not None:
            room = budget.calls - spent.calls - held.calls
            calls = room if calls is None else min(calls, room)
        if budget.tokens is not None:
            room = budget.tokens - spent.tokens - held.tokens
            tokens = room if tokens is None else min(tokens, room)
        if budget.usd is not None:
            left = budget.usd - spent.usd - held.usd
            usd = left if usd is None else min(usd, left)
        if budget.seconds is not None:
            left = budget.seconds - scope.seconds
            seconds = left if seconds is None else min(seconds, left)
        scope = scope.parent
    return BudgetLeft(calls=calls, tokens=tokens, usd=usd, seconds=seconds)
