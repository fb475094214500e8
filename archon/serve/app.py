"""The aiohttp application: routes, authentication and error middleware.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health`` and ``GET /metrics``. With an API key set, every ``/v1/`` route needs
``Authorization: Bearer <key>`` (compared in constant time); ``/health`` and ``/metrics``
stay open for load balancers and scrapers, as in other OpenAI-compatible servers -- keep
the port private or put them behind the proxy's own access rules.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from archon.errors import ArchonError
from archon.runtime import ModelClient, RunEnv
from archon.runtime.env import resolve_env
from archon.serve.budget import Admission, ServerBudget
from archon.serve.chat import ChatRequest, parse_chat_request
from archon.serve.engine import Engine, ServeSettings
from archon.serve.errors import (
    AUTHENTICATION,
    SERVER,
    ApiError,
    bad_request,
    error_response,
    internal_error,
)
from archon.serve.guard import guarded
from archon.serve.metrics import CONTENT_TYPE
from archon.serve.pipelines import ServedPipeline
from archon.serve.responses import completion_json
from archon.serve.stream import CLIENT_CLOSED, stream_answer
from archon.serve.telemetry import ServeMetrics

if TYPE_CHECKING:
    from archon.observability.otel import Otel

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (long conversations fit; larger ones get 413)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServeState:
    """What the handlers of one application share."""

    engine: Engine
    admission: Admission
    metrics: ServeMetrics
    started: int
    draining: bool = False

    @property
    def settings(self) -> ServeSettings:
        return self.engine.settings


STATE = web.AppKey("archon_serve_state", ServeState)


def create_app(
    pipelines: Sequence[ServedPipeline],
    env: RunEnv | None = None,
    *,
    settings: ServeSettings | None = None,
    budget: ServerBudget | None = None,
    otel: Otel | None = None,
    client: ModelClient | None = None,
    **env_fields: Any,
) -> web.Application:
    """An application serving ``pipelines`` (each under its ``name``), every request run in
    ``env`` (its redactor also hides the server's API key).

    With ``otel`` (:class:`archon.observability.otel.Otel`), each request is exported as an
    ``archon serve`` span continuing the caller's W3C ``traceparent``; the caller shuts
    ``otel`` down after the application.

    ``client=..., registry=..., limits=...`` (the :class:`~archon.runtime.RunEnv` fields) may
    be given instead of ``env``. The caller owns the client, cache and trace sink and closes
    them after the application has shut down (see :func:`archon.serve.runner.serve`).
    """
    env = resolve_env(env, client, env_fields, "create_app")
    if not pipelines:
        raise ArchonError("nothing to serve: give at least one pipeline")
    names = [p.name for p in pipelines]
    if len(set(names)) != len(names):
        raise ArchonError(f"two pipelines are served under one name: {', '.join(names)}")
    settings = settings or ServeSettings()
    budget = budget or ServerBudget()
    admission = Admission(settings.max_concurrency, settings.queue)
    metrics = ServeMetrics(
        running=lambda: admission.running,
        waiting=lambda: admission.waiting,
        budget_left=budget.remaining,
    )
    keys = [settings.api_key] if settings.api_key else []
    env = env.replace(redactor=env.redactor.with_values(keys))
    engine = Engine(pipelines, env, settings=settings, budget=budget, metrics=metrics, otel=otel)
    state = ServeState(engine, admission, metrics, started=int(time.time()))
    app = web.Application(middlewares=[_connection, _errors, _auth], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/chat/completions", chat_completions),
        ("GET", "/v1/models", list_models),
        ("GET", "/v1/models/{model}", get_model),
        ("GET", "/health", health),
        ("GET", "/metrics", metrics_text),
    ]
    for method, path, route in routes:
        app.router.add_route(method, path, route, expect_handler=_expect)

    async def drain(_app: web.Application) -> None:
        state.draining = True

    app.on_shutdown.append(drain)
    return app


# --- middleware ---------------------------------------------------------------------------


@web.middleware
async def _connection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's guard that a request runs (its header deadline is met)."""
    guard = guarded(request.transport)
    if guard is not None:
        guard.request_started()
    try:
        return await handler(request)
    finally:
        if guard is not None:
            guard.request_finished()


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes OpenAI-shaped JSON; a traceback only ever reaches the log."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        message = error.reason if error.status != 404 else f"no route {request.path}"
        return error_response(
            ApiError(error.status, message, code=code.get(error.status, "http_error"))
        )
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return error_response(internal_error())


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.app[STATE].settings.api_key
    header = request.headers.get("Authorization", "")
    if key is not None and request.path.startswith("/v1/") and not _authorized(header, key):
        raise ApiError(
            401,
            "Incorrect API key provided: send Authorization: Bearer <key>",
            type=AUTHENTICATION,
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await handler(request)


def _authorized(header: str, key: str) -> bool:
    """Whether ``header`` is ``Bearer <key>``.

    Header bytes that are not UTF-8 reach here as surrogate escapes; they are compared as
    the bytes they were (and so never match). ``compare_digest``: the time taken does not
    depend on how much of the key matches.
    """
    scheme, _, token = header.partition(" ")
    sent = token.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, key.encode())


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` is honoured; any other expectation gets a JSON 417."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version == (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    return error_response(
        ApiError(417, "only Expect: 100-continue is supported", code="expectation_failed")
    )


# --- routes -------------------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    state = request.app[STATE]
    started = time.perf_counter()
    model, status = "unknown", 500
    try:
        if state.draining:
            raise ApiError(
                503,
                "the server is shutting down; retry on another instance",
                type=SERVER,
                code="shutting_down",
                headers={"Retry-After": "1"},
            )
        body = await _json_body(request, state.settings.body_timeout_s)
        chat = parse_chat_request(body, state.engine.pipelines, max_n=state.settings.max_n)
        model = chat.model
        response, status = await _answer(request, state, chat)
        return response
    except ApiError as error:
        status = error.status
        raise
    except BaseException:
        status = CLIENT_CLOSED if request.transport is None else 500
        raise
    finally:
        state.metrics.observe_request(model, status, time.perf_counter() - started)


async def _answer(
    request: web.Request, state: ServeState, chat: ChatRequest
) -> tuple[web.StreamResponse, int]:
    request_id = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    engine = state.engine
    async with state.admission.slot():
        if chat.stream:
            return await stream_answer(request, engine, chat, request_id, created=created)
        try:
            answer = await engine.answer(chat, request_id, headers=request.headers)
        except ArchonError as error:
            raise engine.api_error(error) from error
    body = completion_json(answer, created)
    return _json(body, headers={"x-request-id": request_id}), 200


async def _read_body(request: web.Request, timeout_s: float) -> bytes:
    """The raw body; 408 when it does not arrive within ``timeout_s``, 400 when malformed."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError as error:
        raise ApiError(
            408,
            f"the request body did not arrive within {timeout_s:g} s",
            code="request_timeout",
        ) from error
    except HttpProcessingError as error:
        raise bad_request(f"the body could not be read ({error.message})") from error


async def _json_body(request: web.Request, timeout_s: float) -> Any:
    """The parsed JSON body; 400 for anything that is not JSON the server can hold.

    Too-long integers (``ValueError``) and nesting deeper than the interpreter's recursion
    limit (``RecursionError``) are refused like any other malformed body.
    """
    raw = await _read_body(request, timeout_s)
    try:
        return json.loads(raw)
    except RecursionError as error:
        raise bad_request("the body is not valid JSON (nested too deeply)") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise bad_request(f"the body is not valid JSON ({str(error)[:200]})") from error


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=text, status=status, headers=headers, content_type="application/json")


def _model_json(state: ServeState, served: ServedPipeline) -> dict[str, Any]:
    return {
        "id": served.name,
        "object": "model",
        "created": state.started,
        "owned_by": "archon",
        "archon": {
            "pipeline": served.pipeline.name,
            "fingerprint": served.fingerprint,
            "streams_tokens": served.direct,
            "nodes": len(served.pipeline.nodes),
        },
    }


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the served pipelines."""
    state = request.app[STATE]
    data = [_model_json(state, p) for p in state.engine.pipelines.values()]
    return _json({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{model}``."""
    state = request.app[STATE]
    served = state.engine.pipelines.get(request.match_info["model"])
    if served is None:
        raise ApiError(404, "no such model here (GET /v1/models)", code="model_not_found")
    return _json(_model_json(state, served))


async def health(request: web.Request) -> web.Response:
    """``GET /health``: 200 while serving, 503 once shutting down."""
    state = request.app[STATE]
    body = {
        "status": "draining" if state.draining else "ok",
        "models": list(state.engine.pipelines),
        "requests_in_flight": state.admission.running,
        "requests_queued": state.admission.waiting,
    }
    return _json(body, status=503 if state.draining else 200)


async def metrics_text(request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    text = request.app[STATE].metrics.render()
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
