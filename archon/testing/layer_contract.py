"""``LayerContract``: the conformance suite every layer kind's tests subclass.

A test module for a kind (built-in or third-party) subclasses :class:`LayerContract` and
fills in four things; pytest then collects the inherited ``test_*`` methods::

    class TestRank(LayerContract):
        layer = Rank
        params = {"model": "judge", "top_k": 2}
        script = [(r"Ranking", "Ranking: [2] > [1]")]

The layer runs through the real runtime (:func:`archon.runtime.run` on a small hand-built
:class:`~archon.ir.Pipeline`): a feeder node per input payload, then the layer's node. So the
contract covers the real context, budget meter, trace and cancellation plumbing.

What the base checks:

* ``Params`` round-trips through JSON; the class and ``Params`` have docstrings;
* the layer runs on zero, one and several input candidates with a :class:`ScriptedClient`
  and returns its declared ``produces`` type;
* its static ``estimate`` is an upper bound of the calls it really makes and of its items;
* it is deterministic under a fixed seed;
* it spends only through the context: the meter, the trace and the client count the same
  calls;
* cancelling a run while its calls are in flight raises ``CancelledError`` and leaves no task
  or call behind;
* garbage model replies never raise: the layer still returns a valid payload, and a layer
  that parses model output (``parses_output = True``) records a warning.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from archon.ir import Node, Param, Pipeline, Value
from archon.layers import default_registry
from archon.layers.base import AnyLayer, Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.layers.registry import Registry
from archon.runtime import Limits, MemoryTrace, RunResult, run
from archon.runtime.clients.fake import Rule, ScriptedClient
from archon.values import Candidate, Candidates, Payload, TestCase, Tests

__all__ = ["GARBAGE", "Feed", "LayerContract", "params_to_node"]

GARBAGE = "\x00}}]] ??? <|endoftext|> ranking: banana; score: NaN; verdict: perhaps"
"""A reply no parser should make sense of."""


class FeedParams(LayerParams):
    """A payload as JSON and the dotted path of its type (``module:Class``)."""

    payload: str
    type: str


class Feed(Layer[FeedParams]):
    """Contract helper: emits the payload stored in its parameters (no model call)."""

    kind: ClassVar[str] = "contract_feed"
    Params = FeedParams
    consumes = ()
    produces = Payload

    @classmethod
    def estimate(
        cls, params: FeedParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(0, 0))

    async def run(
        self, ctx: LayerContext, params: FeedParams, inputs: Sequence[Payload]
    ) -> Payload:
        module, _, name = params.type.partition(":")
        payload_type = getattr(importlib.import_module(module), name)
        payload: Payload = payload_type.model_validate_json(params.payload)
        return payload


def _value(value: Any) -> Value:
    if isinstance(value, list | tuple):
        return tuple(_value(v) for v in value)
    if isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"parameter value {value!r} cannot be written in a pipeline")


def params_to_node(params: LayerParams | Mapping[str, Any]) -> tuple[Param, ...]:
    """Parameters as IR ``Param``s (``None`` values are left out: they are the defaults)."""
    data = params.model_dump(mode="json") if isinstance(params, LayerParams) else dict(params)
    return tuple(Param(name=k, value=_value(v)) for k, v in data.items() if v is not None)


def _flow(payload: Payload) -> Flow:
    items = getattr(payload, "items", ())
    tokens = max((len(getattr(item, "text", "")) // 4 + 1 for item in items), default=0)
    return Flow(items=len(items), tokens=tokens)


class LayerContract:
    """Base class of a layer kind's tests. Subclasses set ``layer``, ``params``, ``script``
    and may override :meth:`make_inputs`, ``parses_output`` and ``query``."""

    layer: ClassVar[type[AnyLayer]]
    params: ClassVar[LayerParams | Mapping[str, Any]]
    script: ClassVar[Sequence[Rule]] = ()
    query: ClassVar[str] = "What is 6 times 7? Answer with a number."
    parses_output: ClassVar[bool] = True
    """Whether the layer parses model replies (so garbage must produce a warning)."""
    sizes: ClassVar[tuple[int, ...]] = (0, 1, 4)

    # ----------------------------------------------------------------- fixtures to override

    def make_inputs(self, n: int) -> Sequence[Payload]:
        """Upstream payloads with ``n`` candidates (one payload per ``consumes`` entry)."""
        payloads: list[Payload] = []
        for port in self.layer.consumes:
            if issubclass(port, Candidates):
                payloads.append(
                    Candidates(
                        items=tuple(
                            Candidate(
                                text=f"Candidate {i + 1}: the answer is {40 + i}.",
                                model="m",
                                sample_index=i,
                            )
                            for i in range(n)
                        )
                    )
                )
            elif issubclass(port, Tests):
                payloads.append(
                    Tests(items=(TestCase(text="The answer is a number.", kind="natural"),))
                )
            else:
                raise NotImplementedError(f"override make_inputs for port {port.__name__}")
        return payloads

    def make_client(self, **options: Any) -> ScriptedClient:
        """A scripted client answering by ``script``."""
        return ScriptedClient(list(self.script), **options)

    # ---------------------------------------------------------------------- running helpers

    def validated_params(self) -> LayerParams:
        params: LayerParams = self.layer.validate_params(self.params)
        return params

    def registry(self) -> Registry:
        registry = default_registry().copy()
        registry.register(Feed)
        if self.layer.kind not in registry:
            registry.register(self.layer)
        return registry

    def pipeline(self, inputs: Sequence[Payload]) -> Pipeline:
        feeds = tuple(
            Node(
                id=f"feed_{k}",
                kind=Feed.kind,
                params=(
                    Param(name="payload", value=payload.model_dump_json()),
                    Param(
                        name="type",
                        value=f"{type(payload).__module__}:{type(payload).__qualname__}",
                    ),
                ),
            )
            for k, payload in enumerate(inputs)
        )
        target = Node(
            id="under_test",
            kind=self.layer.kind,
            params=params_to_node(self.params),
            inputs=tuple(f.id for f in feeds),
        )
        return Pipeline(name="contract", nodes=(*feeds, target), output=target.id)

    async def run_layer(
        self,
        n: int,
        client: ScriptedClient,
        *,
        seed: int = 0,
        trace: MemoryTrace | None = None,
    ) -> RunResult:
        """Run the layer on ``make_inputs(n)`` through the real runtime."""
        return await run(
            self.pipeline(self.make_inputs(n)),
            self.query,
            client=client,
            registry=self.registry(),
            limits=Limits(max_concurrency=16, retries=0, timeout_s=30.0),
            trace=trace,
            seed=seed,
        )

    def run_sync(self, n: int, client: ScriptedClient, **options: Any) -> RunResult:
        return asyncio.run(self.run_layer(n, client, **options))

    # ------------------------------------------------------------------------------ tests

    def test_params_round_trip_json(self) -> None:
        params = self.validated_params()
        again = self.layer.Params.model_validate_json(params.model_dump_json())
        assert again == params
        assert json.loads(params.model_dump_json()) == json.loads(again.model_dump_json())

    def test_has_docstrings(self) -> None:
        assert (self.layer.__doc__ or "").strip(), f"{self.layer.__name__} needs a docstring"
        assert (self.layer.Params.__doc__ or "").strip(), "Params needs a docstring"

    def test_prompts_are_named_strings(self) -> None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in self.layer.prompts.items())

    @pytest.mark.parametrize("position", [0, 1, 2])
    def test_runs_on_zero_one_and_many(self, position: int) -> None:
        n = self.sizes[position]
        client = self.make_client()
        result = self.run_sync(n, client)
        assert isinstance(result.output, self.layer.produces)
        self.check_output(n, result, client)

    def check_output(self, n: int, result: RunResult, client: ScriptedClient) -> None:
        """Hook for kind-specific invariants on every run (default: the estimate bounds)."""
        inputs = [_flow(p) for p in self.make_inputs(n)]
        estimate = self.layer.estimate(self.validated_params(), 64, inputs)
        bound = sum(call.calls for call in estimate.calls)
        assert client.calls <= bound, f"{client.calls} calls > estimate {bound}"
        items = getattr(result.output, "items", ())
        assert len(items) <= estimate.output.items

    def test_deterministic_under_fixed_seed(self) -> None:
        n = self.sizes[-1]
        first = self.run_sync(n, self.make_client(), seed=7)
        second = self.run_sync(n, self.make_client(), seed=7)
        assert first.output == second.output
        assert first.warnings == second.warnings

    def test_spends_only_through_the_context(self) -> None:
        client = self.make_client()
        trace = MemoryTrace()
        result = self.run_sync(self.sizes[-1], client, trace=trace)
        assert result.usage.calls == client.calls == len(trace.records)
        assert all(record.node_id == "under_test" for record in trace.records)

    def test_honours_cancellation(self) -> None:
        asyncio.run(self._cancel_while_in_flight())

    async def _cancel_while_in_flight(self) -> None:
        client = self.make_client(latency_s=30.0)
        run_task = asyncio.create_task(self.run_layer(self.sizes[-1], client))
        for _ in range(200):  # wait until a call is in flight (or the run ends without any)
            if client.in_flight or run_task.done():
                break
            await asyncio.sleep(0.01)
        if run_task.done():
            assert client.calls == 0, "the run finished although the client is slow"
            run_task.result()
            return
        run_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run_task
        await asyncio.sleep(0)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftover == [], f"tasks left running after cancellation: {leftover}"
        assert client.in_flight == 0

    def test_survives_malformed_model_output(self) -> None:
        client = ScriptedClient([(None, GARBAGE)])
        result = self.run_sync(self.sizes[-1], client)
        assert isinstance(result.output, self.layer.produces)
        if self.parses_output and client.calls:
            assert result.warnings, "garbage model output should be reported with ctx.warn"
