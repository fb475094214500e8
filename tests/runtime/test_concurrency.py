"""The bounded-concurrency helper: the window, lazy pulling, ordering, errors, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import pytest

from archon.runtime.concurrency import gather_bounded, in_flight


class Probe:
    """Jobs that sleep, record how many run at once, and record being cancelled."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.started: list[int] = []
        self.cancelled: list[int] = []

    def job(self, index: int, delay: float, fail: bool = False) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            self.started.append(index)
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.sleep(delay)
                if fail:
                    raise ValueError(f"job {index} failed")
                return index
            except asyncio.CancelledError:
                self.cancelled.append(index)
                raise
            finally:
                self.running -= 1

        return run


def collect(jobs: list[Callable[[], Awaitable[int]]], limit: int, *, ordered: bool) -> list[int]:
    async def go() -> list[int]:
        return [r async for r in in_flight(jobs, limit, ordered=ordered)]

    return asyncio.run(go())


def test_at_most_limit_in_flight_and_completion_order() -> None:
    probe = Probe()
    delays = [0.06, 0.01, 0.03, 0.02, 0.01]
    results = collect([probe.job(i, d) for i, d in enumerate(delays)], 2, ordered=False)
    assert probe.peak == 2
    assert sorted(results) == [0, 1, 2, 3, 4]
    assert results[0] == 1  # the fastest of the first window finishes first
    assert results != sorted(results)


def test_ordered_results_follow_the_jobs() -> None:
    probe = Probe()
    delays = [0.05, 0.01, 0.03, 0.0, 0.02]
    assert collect([probe.job(i, d) for i, d in enumerate(delays)], 3, ordered=True) == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert probe.peak == 3


def test_gather_bounded_is_ordered() -> None:
    probe = Probe()
    jobs = [probe.job(i, 0.01 * (5 - i)) for i in range(5)]
    assert asyncio.run(gather_bounded(jobs, 2)) == [0, 1, 2, 3, 4]
    assert probe.peak == 2


def test_jobs_are_pulled_only_when_a_slot_frees() -> None:
    probe = Probe()
    pulled: list[int] = []
    stop_after: list[int] = []

    def source() -> Iterator[Callable[[], Awaitable[int]]]:
        for i in range(10):
            if stop_after:  # the consumer decided to stop between results
                return
            pulled.append(i)
            yield probe.job(i, 0.01)

    async def go() -> list[int]:
        seen = []
        async for result in in_flight(source(), 2):
            seen.append(result)
            if len(seen) == 3:
                stop_after.append(1)
        return seen

    seen = asyncio.run(go())
    assert len(pulled) < 10  # nothing was started ahead of its slot
    assert sorted(seen) == pulled  # everything pulled was finished, not dropped


def test_first_error_cancels_the_rest_and_propagates() -> None:
    probe = Probe()
    jobs = [probe.job(0, 0.5), probe.job(1, 0.01, fail=True), probe.job(2, 0.5), probe.job(3, 0)]
    with pytest.raises(ValueError, match="job 1 failed"):
        collect(jobs, 3, ordered=False)
    assert sorted(probe.cancelled) == [0, 2]
    assert 3 not in probe.started  # no new job starts after the failure
    assert probe.running == 0


def test_simultaneous_errors_raise_the_earliest_job() -> None:
    probe = Probe()
    jobs = [probe.job(0, 0.0, fail=True), probe.job(1, 0.0, fail=True)]

    async def go() -> None:
        # both fail before the helper looks: the batch holds both, job 0 is reported
        async for _ in in_flight(jobs, 2):
            pass

    with pytest.raises(ValueError, match="job 0 failed"):
        asyncio.run(go())


def test_closing_early_cancels_jobs_in_flight() -> None:
    probe = Probe()
    jobs = [probe.job(0, 0.0), probe.job(1, 5.0), probe.job(2, 5.0)]

    async def go() -> int:
        async with contextlib.aclosing(in_flight(jobs, 3)) as results:
            async for first in results:
                return first
        raise AssertionError("no result")

    assert asyncio.run(go()) == 0
    assert sorted(probe.cancelled) == [1, 2] and probe.running == 0


def test_cancelling_the_consumer_cancels_the_jobs() -> None:
    probe = Probe()

    async def consume() -> None:
        async for _ in in_flight([probe.job(i, 5.0) for i in range(3)], 3):
            pass

    async def go() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert sorted(probe.cancelled) == [0, 1, 2] and probe.running == 0


def test_no_jobs_and_a_limit_below_one() -> None:
    assert collect([], 4, ordered=False) == []
    probe = Probe()
    assert collect([probe.job(i, 0) for i in range(3)], 0, ordered=True) == [0, 1, 2]
    assert probe.peak == 1
