"""Bounded concurrency: keep at most ``limit`` jobs in flight and hand back their results.

This is the one "keep K tasks in flight" loop of archon; :func:`~archon.runtime.run_many`,
evaluation (items of a dataset) and search (trials of a study) all use it.

* Jobs are pulled **lazily**: the next job is taken from the iterable only when a slot is
  free, so a generator can decide at that moment whether to start another one (a search stops
  asking for trials once its budget is reached; an evaluation stops starting items once its
  run budget is exhausted).
* Results come back as jobs finish (``ordered=False``) or in the order the jobs were given
  (``ordered=True``; finished results wait for the earlier ones, outside the ``limit``).
* The first job that raises cancels the others; its exception propagates (when several fail
  in the same step, the earliest job's). Jobs should turn expected failures into values.
* Closing the iterator early (``break`` inside ``contextlib.aclosing``, or cancelling the
  consumer) cancels every job in flight and waits for them to finish unwinding.

Example::

    async for answer in in_flight((lambda q=q: ask(q) for q in queries), limit=8):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

Job = Callable[[], Awaitable[T]]
"""A job: a zero-argument callable returning an awaitable (called when its slot is free)."""


async def _run(job: Job[T]) -> T:
    return await job()


async def in_flight(
    jobs: Iterable[Job[T]], limit: int, *, ordered: bool = False
) -> AsyncGenerator[T, None]:
    """Run ``jobs`` with at most ``limit`` at once, yielding each result (see the module doc).

    Args:
        jobs: zero-argument callables returning awaitables; pulled one at a time when a slot
            frees.
        limit: jobs in flight at once (values below 1 count as 1).
        ordered: yield in the order of ``jobs`` instead of completion order.
    """
    window = max(1, limit)
    source = iter(jobs)
    pending: dict[asyncio.Task[T], int] = {}
    finished: dict[int, T] = {}
    started = emitted = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                job = next(source, None)
                if job is None:
                    exhausted = True
                    break
                pending[asyncio.ensure_future(_run(job))] = started
                started += 1
            if not pending:
                return
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            finished.update(_collect(done, pending))
            if not ordered:
                for index in sorted(finished):
                    yield finished.pop(index)
            while emitted in finished:
                yield finished.pop(emitted)
                emitted += 1
    finally:
        await _cancel(pending)


def _collect(done: set[asyncio.Task[T]], pending: dict[asyncio.Task[T], int]) -> dict[int, T]:
    """The results of ``done`` by job index (removed from ``pending``), or the first error."""
    batch = sorted(done, key=pending.__getitem__)
    indices = [pending.pop(task) for task in batch]
    # Retrieve every exception of the batch (so none is reported as never retrieved), then
    # raise the earliest job's.
    errors = [task.exception() for task in batch if not task.cancelled()]
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first
    return {index: task.result() for index, task in zip(indices, batch, strict=True)}


async def _cancel(pending: Iterable[asyncio.Task[T]]) -> None:
    tasks = list(pending)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def gather_bounded(jobs: Iterable[Job[T]], limit: int) -> list[T]:
    """The results of all ``jobs``, in their order, with at most ``limit`` in flight."""
    return [result async for result in in_flight(jobs, limit, ordered=True)]
