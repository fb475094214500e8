"""Reserve-then-settle budgets never overshoot, even with many calls in flight."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archon.ir import Budget
from archon.layers.registry import Registry
from archon.runtime import BudgetExceeded, Limits, Meter, Reservation, run_sync
from archon.runtime.budget import estimate_prompt_tokens
from archon.runtime.clients.base import Price
from archon.runtime.clients.fake import ScriptedClient, fake_tokens
from archon.values import Message, Usage

from .conftest import node, pipeline


def test_meter_reserve_and_settle() -> None:
    async def main() -> None:
        meter = Meter(Budget(calls=2, tokens=100))
        held = await meter.reserve(Reservation(1, 60, 0.0))
        assert meter.held.tokens == 60
        meter.settle(held, Usage(calls=1, prompt_tokens=10, completion_tokens=5))
        assert meter.spent.tokens == 15 and meter.held == Reservation(0, 0, 0.0)
        with pytest.raises(BudgetExceeded) as info:
            await meter.reserve(Reservation(1, 90, 0.0))
        assert info.value.limit == "tokens" and info.value.spent.tokens == 15

    asyncio.run(main())


def test_reservation_waits_for_calls_in_flight() -> None:
    async def main() -> list[str]:
        meter = Meter(Budget(tokens=100))
        first = await meter.reserve(Reservation(1, 80, 0.0))
        events: list[str] = []

        async def second() -> None:
            await meter.reserve(Reservation(1, 50, 0.0))
            events.append("second reserved")

        task = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        events.append("settling first")
        meter.settle(first, Usage(calls=1, prompt_tokens=20))
        await task
        return events

    assert asyncio.run(main()) == ["settling first", "second reserved"]


def test_parent_meter_is_shared() -> None:
    async def main() -> None:
        run_meter = Meter(Budget(calls=3), scope="run")
        a = Meter(Budget(calls=2), parent=run_meter)
        b = Meter(Budget(calls=2), parent=run_meter)
        for meter in (a, a, b):
            held = await meter.reserve(Reservation(1, 0, 0.0))
            meter.settle(held, Usage(calls=1))
        with pytest.raises(BudgetExceeded) as info:
            await b.reserve(Reservation(1, 0, 0.0))
        assert info.value.scope == "run"

    asyncio.run(main())


def test_estimate_bounds_the_fake_token_count() -> None:
    messages = (Message(role="user", content="héllo wörld " * 50),)
    assert estimate_prompt_tokens(messages) >= sum(fake_tokens(m.content) + 4 for m in messages)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    calls=st.one_of(st.none(), st.integers(1, 80)),
    tokens=st.one_of(st.none(), st.integers(50, 8000)),
    usd=st.one_of(st.none(), st.floats(0.0001, 0.01)),
    max_tokens=st.integers(1, 100),
    answer_len=st.integers(0, 600),
)
def test_budget_never_exceeded_under_64_concurrent_calls(
    registry: Registry,
    calls: int | None,
    tokens: int | None,
    usd: float | None,
    max_tokens: int,
    answer_len: int,
) -> None:
    budget = Budget(calls=calls, tokens=tokens, usd=usd)
    client = ScriptedClient(
        lambda r: "x" * answer_len,
        latency_s=lambda r: (r.seed or 0) % 7 / 2000,
        price=Price.per_million(1.0, 2.0),
    )
    p = pipeline(node("gen", samples=64, max_tokens=max_tokens, temperature=1.0), budget=budget)
    try:
        result = run_sync(p, "q" * 40, client=client, registry=registry, limits=Limits(64))
        spent = result.usage
    except BudgetExceeded as error:
        spent = error.spent
    assert calls is None or spent.calls <= calls
    assert tokens is None or spent.tokens <= tokens
    assert usd is None or spent.usd <= usd + 1e-12
    assert client.max_in_flight <= 64


def test_usd_budget_uses_known_prices(registry: Registry) -> None:
    client = ScriptedClient(price=Price.per_million(1000.0, 1000.0))
    p = pipeline(node("gen", samples=5, max_tokens=10), budget=Budget(usd=0.05))
    with pytest.raises(BudgetExceeded) as info:
        run_sync(p, "q", client=client, registry=registry)
    assert info.value.limit == "usd"
    assert info.value.spent.usd <= 0.05
    assert "spent" in str(info.value)


def test_budget_exhaustion_is_reported_even_when_usd_reservations_leave_a_float_residue() -> None:
    async def main() -> None:
        meter = Meter(Budget(usd=0.0012))
        # 0.0003 + 0.0007 + 0.0001, released in the same order, leaves ~1e-19 behind in
        # floating point; the meter must still know that nothing is in flight.
        held = [await meter.reserve(Reservation(1, 0, usd)) for usd in (0.0003, 0.0007, 0.0001)]
        for reservation in held:
            meter.settle(reservation, Usage(calls=1, usd=reservation.usd))
        assert meter.held == Reservation(0, 0, 0.0)
        with pytest.raises(BudgetExceeded):
            await asyncio.wait_for(meter.reserve(Reservation(1, 0, 0.0005)), timeout=5)

    asyncio.run(main())
