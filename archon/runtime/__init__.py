"""Execute concrete pipelines: ``run``, ``run_sync``, ``run_many``, ``run_conversation``.

Everything a run needs is passed explicitly, as one :class:`RunEnv` -- a
:class:`~archon.runtime.clients.base.ModelClient`, :class:`Limits`, a
:class:`~archon.layers.registry.Registry`, an optional :class:`CallCache` and trace sink, the
:class:`Redactor` and the seed -- there is no module-level default of any of them.
:meth:`RunEnv.open` builds the environment the CLI builds (routing client, key policy, local
models, HTTP timeouts, call cache with banks).
"""

from __future__ import annotations

from archon.runtime.budget import BudgetExceeded, Meter, Reservation
from archon.runtime.cache import CacheError, CacheStats, CallCache, cache_key
from archon.runtime.clients.base import (
    ModelCallError,
    ModelClient,
    Price,
    PricedClient,
    RetriesExhausted,
    StreamingClient,
)
from archon.runtime.clients.keys import KeyGrant, KeyPolicy, KeyPolicyError
from archon.runtime.env import Connection, EnvError, RunEnv, open_cache, open_client
from archon.runtime.executor import (
    InvalidNode,
    ItemResult,
    NodeFailed,
    PipelineNotConcrete,
    Prepared,
    RunResult,
    as_conversation,
    prepare,
    run,
    run_conversation,
    run_many,
    run_sync,
)
from archon.runtime.limits import Limits
from archon.runtime.secrets import Redactor
from archon.runtime.streaming import StreamTap
from archon.runtime.trace import CallRecord, JsonlTrace, MemoryTrace, TraceSink, read_trace

__all__ = [
    "BudgetExceeded",
    "CacheError",
    "CacheStats",
    "CallCache",
    "CallRecord",
    "Connection",
    "EnvError",
    "InvalidNode",
    "ItemResult",
    "JsonlTrace",
    "KeyGrant",
    "KeyPolicy",
    "KeyPolicyError",
    "Limits",
    "MemoryTrace",
    "Meter",
    "ModelCallError",
    "ModelClient",
    "NodeFailed",
    "PipelineNotConcrete",
    "Prepared",
    "Price",
    "PricedClient",
    "Redactor",
    "Reservation",
    "RetriesExhausted",
    "RunEnv",
    "RunResult",
    "StreamTap",
    "StreamingClient",
    "TraceSink",
    "as_conversation",
    "cache_key",
    "open_cache",
    "open_client",
    "prepare",
    "read_trace",
    "run",
    "run_conversation",
    "run_many",
    "run_sync",
]
