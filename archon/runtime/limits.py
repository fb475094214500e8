"""Concurrency, timeouts and retries: the one owner of the semaphores of a run's model calls
and sandbox programs.

Two other bounds are deliberately separate: the server's admission slots
(:class:`archon.serve.budget.Admission`, requests rather than calls) and a standalone
:class:`archon.sandbox.Sandbox`'s own limit when it is used outside a run; inside a run, every
call and program takes its slot here.

One :class:`Limits` instance is shared by everything that runs at the same time (all nodes of
a query, all queries of :func:`~archon.runtime.run_many`, all trials of a search), so the
pressure on each provider is bounded in one place. Every model call goes through
:meth:`Limits.call`, which

1. takes a slot of the call's model (``per_model``; ``local/...`` models get as many slots as
   the embedded engine decodes sequences together, 8 by default, so concurrent calls reach
   its batch instead of queueing here),
2. then a slot of the global pool (``max_concurrency``) -- always in this order, so waiting
   can never deadlock,
3. runs the call under ``timeout_s``,
4. on a retryable failure (rate limit, 5xx, timeout, dropped connection) releases both slots,
   sleeps with exponential backoff and jitter, and tries again, up to ``retries`` times.

Programs a layer runs in the sandbox (``ctx.run_tests`` and friends) go through
:meth:`Limits.run_code`, which holds one of ``sandbox_concurrency`` slots per run, so the
subprocesses on this machine are bounded here too (default: one per CPU core).

Semaphores are created per event loop on first use, so one ``Limits`` also works across the
successive ``asyncio.run`` calls of ``run_sync``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from archon.runtime.clients.base import LOCAL_SEQUENCES, ModelCallError, RetriesExhausted

logger = logging.getLogger(__name__)
T = TypeVar("T")

LOCAL_PREFIX = "local/"


@dataclass
class _LoopState:
    pool: asyncio.Semaphore
    sandbox: asyncio.Semaphore
    models: dict[str, asyncio.Semaphore] = field(default_factory=dict)


class Limits:
    """Global and per-model concurrency, per-call timeout and the retry policy.

    Args:
        max_concurrency: model calls in flight at once, over all models.
        per_model: calls in flight per model string (exact match, or a prefix ending in
            ``/`` such as ``"openai/"``). Models not listed get ``default_per_model``
            (``local/...`` models get ``local_concurrency``: the embedded engine's sequence
            limit, so that the calls of a node's samples are decoded together).
        timeout_s: wall-clock limit of one attempt (None: no limit).
        retries: extra attempts after a retryable failure.
        backoff_s: first backoff delay; doubles each attempt up to ``max_backoff_s``.
        jitter: the delay is multiplied by ``1 + jitter * U(0, 1)``.
        rng: random source for jitter (pass a seeded one in tests).
        sandbox_concurrency: sandboxed program runs at once (each a few subprocesses);
            None: one per CPU core.

    Example:
        >>> limits = Limits(max_concurrency=16, per_model={"openai/gpt-4o-mini": 8})
        >>> limits.capacity("local/qwen2.5-coder-0.5b")
        8
    """

    def __init__(
        self,
        max_concurrency: int = 64,
        per_model: Mapping[str, int] | None = None,
        *,
        default_per_model: int | None = None,
        local_concurrency: int = LOCAL_SEQUENCES,
        timeout_s: float | None = 300.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
        sandbox_concurrency: int | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if sandbox_concurrency is None:
            sandbox_concurrency = os.cpu_count() or 1
        if sandbox_concurrency < 1:
            raise ValueError("sandbox_concurrency must be at least 1")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.max_concurrency = max_concurrency
        self.per_model: dict[str, int] = dict(per_model or {})
        self.default_per_model = default_per_model
        self.local_concurrency = local_concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.jitter = jitter
        self.sandbox_concurrency = sandbox_concurrency
        self._rng = rng or random.Random()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def capacity(self, model: str) -> int:
        """How many calls to ``model`` may be in flight at once."""
        if model in self.per_model:
            return self.per_model[model]
        prefixes = [p for p in self.per_model if p.endswith("/") and model.startswith(p)]
        if prefixes:
            return self.per_model[max(prefixes, key=len)]
        if model.startswith(LOCAL_PREFIX):
            return self.local_concurrency
        return self.default_per_model or self.max_concurrency

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = _LoopState(
                asyncio.Semaphore(self.max_concurrency),
                asyncio.Semaphore(self.sandbox_concurrency),
            )
            self._states[loop] = state
        return state

    def _model_semaphore(self, state: _LoopState, model: str) -> asyncio.Semaphore:
        semaphore = state.models.get(model)
        if semaphore is None:
            semaphore = asyncio.Semaphore(max(1, self.capacity(model)))
            state.models[model] = semaphore
        return semaphore

    def backoff(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based)."""
        delay: float = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        delay *= 1.0 + self.jitter * self._rng.random()
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_backoff_s))
        return delay

    async def call(
        self,
        model: str,
        fn: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[int, ModelCallError], None] | None = None,
    ) -> T:
        """Run ``fn()`` for ``model`` under the limits, retrying retryable failures.

        Raises:
            ModelCallError: a non-retryable failure, as raised by the client.
            RetriesExhausted: the last of ``1 + retries`` retryable failures.
        """
        state = self._state()
        model_slot = self._model_semaphore(state, model)
        attempt = 0
        while True:
            try:
                async with model_slot, state.pool:
                    return await self._attempt(model, fn)
            except ModelCallError as error:
                if not error.retryable:
                    raise
                if attempt >= self.retries:
                    raise RetriesExhausted(
                        f"{model}: gave up after {attempt + 1} attempts: {error}",
                        model=model,
                        retryable=False,
                        status=error.status,
                    ) from error
                delay = self.backoff(attempt, error.retry_after_s)
                # Only the status is logged: provider messages may echo credentials.
                logger.info(
                    "retrying %s in %.2fs (attempt %d failed, status %s)",
                    model,
                    delay,
                    attempt + 1,
                    error.status,
                )
                if on_retry is not None:
                    on_retry(attempt + 1, error)
                attempt += 1
                await asyncio.sleep(delay)

    async def run_code(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` (one sandboxed program run) holding a slot of ``sandbox_concurrency``.

        No timeout or retry here: the sandbox enforces its own deadlines, and a program's
        failure is its result, not an error to retry.
        """
        async with self._state().sandbox:
            return await fn()

    async def _attempt(self, model: str, fn: Callable[[], Awaitable[T]]) -> T:
        if self.timeout_s is None:
            return await fn()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fn()
        except TimeoutError as e:
            raise ModelCallError(
                f"{model}: no answer within {self.timeout_s:g}s", model=model, retryable=True
            ) from e
