"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with a status.

Every failure a client can see goes through :class:`ApiError`, so a body never holds a
traceback: :func:`error_for` maps the runtime's typed errors (a failed node, a budget, a
pipeline that cannot run) to their status, and anything else becomes a plain 500 whose
details go to the server log only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from archon.errors import ArchonError
from archon.runtime import BudgetExceeded, InvalidNode, NodeFailed, PipelineNotConcrete

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
RATE_LIMIT = "rate_limit_error"
QUOTA = "insufficient_quota"
SERVER = "server_error"


class ApiError(ArchonError):
    """An error answered to the client as OpenAI-shaped JSON.

    Attributes:
        status: the HTTP status.
        type: the OpenAI error type (``invalid_request_error``, ``server_error``, ...).
        code: a short machine-readable code (``model_not_found``, ``node_failed``, ...).
        param: the request field at fault, when there is one.
        headers: extra response headers (``Retry-After``, ``x-should-retry``).
        extra: further fields of the error object (e.g. the failed ``node``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {...}}``."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, param=param, code=code)


def budget_error(error: BudgetExceeded, retry_after_s: int, final: bool) -> ApiError:
    """429 for a budget limit. ``final``: retrying cannot help (the server budget has no
    window, or the limit is the request's or the pipeline's own), so clients are told not
    to retry (``x-should-retry: false``, which the official clients obey)."""
    headers = {"Retry-After": str(max(0, retry_after_s))}
    if final:
        headers["x-should-retry"] = "false"
    return ApiError(
        429,
        str(error),
        type=QUOTA,
        code=f"{error.scope}_budget_exceeded",
        headers=headers,
        extra={"limit": error.limit, "scope": error.scope},
    )


def error_for(error: ArchonError, *, server_retry_after_s: int, server_final: bool) -> ApiError:
    """The client-facing error of a failed run."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, BudgetExceeded):
        if error.scope == "server":
            return budget_error(error, server_retry_after_s, server_final)
        return budget_error(error, 0, True)
    if isinstance(error, NodeFailed):
        return ApiError(
            500, str(error), type=SERVER, code="node_failed", extra={"node": error.node_id}
        )
    if isinstance(error, InvalidNode | PipelineNotConcrete):
        return bad_request(str(error), code="invalid_pipeline_parameters")
    return ApiError(500, str(error), type=SERVER, code="pipeline_failed")


def internal_error() -> ApiError:
    """A 500 that says nothing about the cause (which is logged on the server)."""
    return ApiError(
        500,
        "internal server error; the server log has the details",
        type=SERVER,
        code="internal_error",
    )


def error_response(error: ApiError) -> web.Response:
    """The JSON response of ``error``, with its status and headers."""
    return web.json_response(error.body(), status=error.status, headers=error.headers)
