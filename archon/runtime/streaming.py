"""Streaming the text of one call while it is generated (used by ``archon serve``).

A :class:`StreamTap` names the node whose call writes a query's answer and a callback that
receives the text pieces. When the query's state carries a tap, the runtime sends that node's
call through :meth:`~archon.runtime.clients.base.StreamingClient.stream` instead of
``complete``; everything else about the call is unchanged -- cache lookup, budget reservation,
limits, settlement, cache store and trace all see the final response, exactly as for
``complete``. A cache hit streams nothing (the answer is known at once).

A retry after text was passed on would send the start of the answer twice, so a tapped call
that fails once it has sent text is not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archon.runtime.clients.base import ModelCallError, StreamingClient
from archon.values import CompletionRequest, CompletionResponse


@dataclass
class StreamTap:
    """Receives the text of node ``node_id``'s single call as it is generated.

    Attributes:
        node_id: the node whose call is streamed (its first sample only).
        on_text: called on the event loop thread with each non-empty text piece.
        sent: whether any text has been passed on (set by the runtime).
    """

    node_id: str
    on_text: Callable[[str], None]
    sent: bool = False


async def stream_call(
    client: StreamingClient, request: CompletionRequest, tap: StreamTap
) -> CompletionResponse:
    """One attempt of a tapped call: pass text pieces to ``tap``, return the final response.

    Raises:
        ModelCallError: the stream failed; not retryable once text was passed on, and an
            attempt after such a failure fails at once.
    """
    if tap.sent:
        raise ModelCallError(
            f"{request.model}: the answer's stream broke after part of it was sent;"
            " not retried, so that no text is sent twice",
            model=request.model,
        )
    response: CompletionResponse | None = None
    try:
        async for item in client.stream(request):
            if isinstance(item, str):
                if item:
                    tap.sent = True
                    tap.on_text(item)
            else:
                response = item
    except ModelCallError as error:
        if tap.sent and error.retryable:
            raise ModelCallError(
                f"{error} (after part of the answer was sent; not retried)",
                model=error.model,
                status=error.status,
            ) from error
        raise
    if response is None:
        raise ModelCallError(
            f"{request.model}: the stream ended without its final response",
            model=request.model,
            retryable=not tap.sent,
        )
    return response
