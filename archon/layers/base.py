"""The layer extension contract: ``Layer``, ``LayerParams``, ``LayerContext`` and estimates.

A layer kind is one class in one file under ``archon/layers/`` (or a plugin registered under
the ``archon.layers`` entry-point group). It declares:

* ``kind``: the snake_case name used in ``.pipe`` files;
* ``Params``: a frozen pydantic model validating its arguments (the compiler validates every
  option of every hole against it, so a search never samples an invalid configuration). A
  kind names it twice: as the type argument of ``Layer`` (``class Rank(Layer[RankParams])``),
  so that ``run`` and ``estimate`` receive that precise type, and as the ``Params`` class
  attribute, which the runtime validates arguments with;
* ``consumes``: the payload types it reads from upstream nodes (empty: it reads only the query);
* ``produces``: the payload type it emits;
* ``estimate``: a static upper bound on its calls and tokens, used by ``archon check`` and by
  search to reject configurations over budget before any call;
* ``run``: the async implementation, which reaches models only through ``ctx.complete``.

Call order: the runtime validates params once, then calls ``run(ctx, params, inputs)`` with
one payload per upstream node, in the order of the node's ``inputs``. ``run`` must not create
tasks, semaphores or threads, import provider SDKs, or read the environment; it runs
programs only through ``ctx.run_tests``/``run_calls``/``run_stdio`` (the sandbox, under the
runtime's limit on concurrent runs).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeAlias

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

from archon.errors import ArchonError
from archon.values import CompletionRequest, CompletionResponse, Message, Payload, TestCase

if TYPE_CHECKING:  # the sandbox is loaded only by the layers that run programs
    from archon.sandbox import CallsReport, SandboxReport


class LayerParams(BaseModel):
    """Base for a kind's parameters: frozen, unknown names rejected."""

    # defer_build: a kind's validator is built when first used, so compiling a pipeline
    # (archon check) pays only for the kinds it uses.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class LayerNotImplemented(ArchonError):
    """Raised by a declared kind whose execution is not available in this version."""

    @classmethod
    def for_kind(cls, kind: str) -> LayerNotImplemented:
        return cls(
            f"layer kind '{kind}' is declared (params, ports, cost estimate) but cannot run"
            " in this version of archon"
        )


class LayerContext(Protocol):
    """What a running layer may use. Implemented by the runtime."""

    @property
    def node_id(self) -> str: ...

    @property
    def query(self) -> tuple[Message, ...]:
        """The conversation being answered (last message is the user's turn)."""
        ...

    @property
    def rng(self) -> random.Random:
        """A random generator seeded per run and node: use it for any randomness."""
        ...

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The only door to a model: applies limits, cache, budget and tracing."""
        ...

    def warn(self, message: str) -> None:
        """Record a recoverable problem (e.g. unparsable model output) in the trace."""
        ...

    def budget_left(self) -> BudgetLeft:
        """What the query may still spend (the tightest of its budget scopes), so a layer
        that works in rounds can stop cleanly before a round that would not fit."""
        ...

    async def http_json(self, url: str, body: Mapping[str, object]) -> object:
        """POST ``body`` as JSON to ``url`` and return the decoded JSON reply, under the
        runtime's limits (concurrency, timeout, retries). For non-model services such as
        an external process reward model; it is not metered as a model call."""
        ...

    async def run_tests(
        self, code: str, tests: Sequence[str | TestCase], *, timeout_s: float, memory_mb: int
    ) -> SandboxReport:
        """:func:`archon.sandbox.run_tests` under the runtime's limit on concurrent
        sandboxed runs: ``code`` against each test, isolated."""
        ...

    async def run_calls(
        self, code: str, calls: Sequence[str], *, timeout_s: float, memory_mb: int
    ) -> CallsReport:
        """:func:`archon.sandbox.run_calls` under the same limit: each call expression
        evaluated in a fresh copy of the loaded program."""
        ...

    async def run_stdio(
        self, code: str, inputs: Sequence[str], *, timeout_s: float, memory_mb: int
    ) -> CallsReport:
        """:func:`archon.sandbox.run_stdio` under the same limit: ``code`` run as a
        program once per standard-input text."""
        ...


@dataclass(frozen=True)
class BudgetLeft:
    """Room left in a query's budget: calls, tokens, USD, seconds (``None``: unlimited).

    Reserved amounts of calls in flight count as spent."""

    calls: int | None = None
    tokens: int | None = None
    usd: float | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Flow:
    """Static shape of a payload: how many items and an upper bound on tokens per item.

    ``payload`` is the payload type when known (the cost estimate sets it from the upstream
    kind's ``produces``), so a kind that reads several input types can count only its
    candidates; ``None`` means unknown, and such a flow counts as any type.
    """

    items: int
    tokens: int
    payload: type[Payload] | None = None


@dataclass(frozen=True)
class CallEstimate:
    """Upper bound on the calls one layer makes to one model."""

    model: str
    calls: int
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class LayerEstimate:
    """What a layer emits (shape) and what it costs, statically."""

    output: Flow
    calls: tuple[CallEstimate, ...] = ()


P = TypeVar("P", bound=LayerParams, default=LayerParams)
"""A kind's parameter type. The default keeps a plain ``class X(Layer)`` valid: its ``run``
and ``estimate`` then receive ``LayerParams``."""


class Layer(ABC, Generic[P]):
    """A layer kind. Subclasses set the class attributes and implement ``run``.

    Generic in its parameter type: ``class Vote(Layer[VoteParams])`` with
    ``Params = VoteParams`` declares ``run(self, ctx, params: VoteParams, inputs)``.
    """

    kind: ClassVar[str]
    Params: type[P]
    """The pydantic model of the arguments (a class attribute; the type argument's class)."""
    consumes: ClassVar[tuple[type[Payload], ...]] = ()
    optional_inputs: ClassVar[tuple[type[Payload], ...]] = ()
    """Those of ``consumes`` the kind reads when given but can do without: a layer written
    without ``<-`` reads them only when an earlier layer produces them, and the compiler
    does not require them."""
    produces: ClassVar[type[Payload]]
    prompts: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Default prompt templates by name (what ``archon kinds KIND --prompts`` prints)."""
    is_filter: ClassVar[bool] = False
    """The output is a subset of the input candidates (evaluation reports what it kept)."""

    @classmethod
    def validate_params(
        cls, arguments: Mapping[str, Any] | LayerParams, *, strict: bool = False
    ) -> P:
        """``arguments`` as this kind's ``Params``: the one place where a caller that holds
        plain arguments (or a ``LayerParams`` of unknown kind) gets the precise type.

        Args:
            arguments: plain arguments, or params of any kind.
            strict: no type coercion (pydantic's strict mode: ``"3"`` is not an int).
                ``archon check`` (:mod:`archon.compiler.param_checks`) validates every hole
                option strictly; the executor and the cost estimate then validate the
                checked arguments in the default (lax) mode.

        Raises:
            pydantic.ValidationError: the arguments are not valid for this kind.
        """
        if isinstance(arguments, cls.Params):
            return arguments
        if isinstance(arguments, LayerParams):
            arguments = arguments.model_dump()
        return cls.Params.model_validate(arguments, strict=strict)

    @classmethod
    @abstractmethod
    def estimate(cls, params: P, query_tokens: int, inputs: Sequence[Flow]) -> LayerEstimate:
        """Upper bound on calls and tokens for one query, given the upstream shapes."""

    @abstractmethod
    async def run(self, ctx: LayerContext, params: P, inputs: Sequence[Payload]) -> Payload:
        """Execute the layer for one query."""


@dataclass(frozen=True)
class ExitDecision:
    """What a :class:`Gate` decided for one query: stop here (``exit``) or go on, and why."""

    exit: bool
    reason: str


class Gate(Layer[P]):
    """A layer that may end the pipeline early for one query (an early exit).

    The nodes written after a gate form the later stages: the runtime starts them only once
    the gate has decided, and skips them all when it decides to exit; the gate's own output
    (its input candidates, passed through) is then the pipeline's answer. The runtime calls
    :meth:`gate`; ``run`` gives only its payload, for callers that do not stop early.
    """

    @abstractmethod
    async def gate(
        self, ctx: LayerContext, params: P, inputs: Sequence[Payload]
    ) -> tuple[Payload, ExitDecision]:
        """The gate's output and whether the pipeline stops here for the current query."""

    async def run(self, ctx: LayerContext, params: P, inputs: Sequence[Payload]) -> Payload:
        output, _ = await self.gate(ctx, params, inputs)
        return output


AnyLayer: TypeAlias = Layer[Any]
"""A layer of any kind, as registries and the runtime hold them (each kind's ``Params``
validates its own arguments, so its ``run`` gets the right type)."""


def prompt_tokens(*texts_tokens: int, overhead: int = 64) -> int:
    """Token bound for a prompt assembled from parts of known bounds plus template overhead."""
    return overhead + sum(texts_tokens)


def flows_of(inputs: Sequence[Flow], payload: type[Payload]) -> list[Flow]:
    """The input flows that may carry ``payload`` (those of unknown type included)."""
    return [flow for flow in inputs if flow.payload is None or flow.payload is payload]


def total_items(inputs: Sequence[Flow]) -> int:
    return sum(flow.items for flow in inputs)


def max_tokens_of(inputs: Sequence[Flow]) -> int:
    return max((flow.tokens for flow in inputs), default=0)
