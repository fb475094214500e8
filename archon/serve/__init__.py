"""``archon serve``: any concrete pipeline behind an OpenAI-compatible HTTP endpoint.

Built on aiohttp.web, the stack the runtime already uses for its HTTP client: one event loop
runs the server and every pipeline, with one :class:`~archon.runtime.Limits`, one call cache
and one trace sink shared by all requests. This package imports the runtime and the IR; the
runtime and the compiler never import it.

Example::

    from archon.serve import ServedPipeline, create_app, start

    app = create_app([ServedPipeline.build("moa", pipeline, registry)],
                     RunEnv(client=client, registry=registry))
    server = await start(app, "127.0.0.1", 0)      # server.url -> http://127.0.0.1:PORT/v1
    ...
    await server.stop()
"""

from __future__ import annotations

from archon.serve.app import create_app
from archon.serve.budget import Admission, ServerBudget
from archon.serve.chat import ChatRequest, Sampling, parse_chat_request
from archon.serve.engine import Answer, Engine, ServeSettings
from archon.serve.errors import ApiError
from archon.serve.pipelines import ServedPipeline
from archon.serve.runner import RunningServer, serve, start

__all__ = [
    "Admission",
    "Answer",
    "ApiError",
    "ChatRequest",
    "Engine",
    "RunningServer",
    "Sampling",
    "ServeSettings",
    "ServedPipeline",
    "ServerBudget",
    "create_app",
    "parse_chat_request",
    "serve",
    "start",
]
