"""Server budget (windows, refusal before work) and admission (running + waiting slots)."""

from __future__ import annotations

import asyncio

import pytest

from archon.errors import ArchonError
from archon.ir import Budget
from archon.runtime import BudgetExceeded, Reservation
from archon.serve import Admission, ApiError, ServerBudget
from archon.values import Usage


def test_server_budget_refuses_once_spent_and_renews_each_window() -> None:
    now = [100.0]
    budget = ServerBudget(Budget(calls=2, usd=1.0), window_s=10, clock=lambda: now[0])
    meter = budget.meter()

    async def spend() -> None:
        held = await meter.reserve(Reservation(2, 0, 0.0))
        meter.settle(held, Usage(calls=2, usd=0.25))

    asyncio.run(spend())
    assert budget.remaining() == {"calls": 0, "usd": 0.75}
    with pytest.raises(BudgetExceeded) as caught:
        budget.check()
    assert (caught.value.scope, caught.value.limit) == ("server", "calls")
    now[0] = 104.0
    assert budget.retry_after_s() == 6 and not budget.final
    now[0] = 125.0  # two windows later
    budget.check()
    assert budget.meter() is not meter and budget.remaining() == {"calls": 2, "usd": 1.0}
    assert budget.retry_after_s() == 5


def test_server_budget_without_window_is_final() -> None:
    budget = ServerBudget(Budget(tokens=10))
    assert budget.final and budget.retry_after_s() > 120
    budget.check()
    with pytest.raises(ArchonError, match="not seconds"):
        ServerBudget(Budget(seconds=3))
    with pytest.raises(ArchonError, match="positive"):
        ServerBudget(Budget(calls=1), window_s=0)


def test_admission_runs_waits_and_refuses() -> None:
    admission = Admission(max_running=2, max_waiting=1)
    release = asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def job() -> str:
        try:
            async with admission.slot():
                seen.append((admission.running, admission.waiting))
                await release.wait()
            return "done"
        except ApiError as error:
            assert error.status == 429 and "Retry-After" in error.headers
            return "refused"

    async def main() -> list[str]:
        tasks = [asyncio.create_task(job()) for _ in range(4)]
        await asyncio.sleep(0.01)
        assert (admission.running, admission.waiting) == (2, 1)
        release.set()
        return await asyncio.gather(*tasks)

    outcomes = asyncio.run(main())
    assert sorted(outcomes) == ["done", "done", "done", "refused"]
    assert max(r for r, _ in seen) == 2
    assert (admission.running, admission.waiting) == (0, 0)
    with pytest.raises(ArchonError):
        Admission(0, 0)
