"""JSON over HTTP for non-model services (an external process reward model, for instance).

Layers reach such a service through ``ctx.http_json``, which runs :func:`post_json` under
:class:`~archon.runtime.limits.Limits` (a slot, the per-call timeout, retries with backoff).
Failures are reported as :class:`~archon.runtime.clients.base.ModelCallError` with the same
classification as the model clients: connection errors, timeouts, 429 and 5xx are retryable;
other statuses and replies that are not JSON are not.
"""

from __future__ import annotations

from collections.abc import Mapping

from archon.runtime.clients.base import ModelCallError

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_SHOWN_CHARS = 300


async def post_json(url: str, body: Mapping[str, object]) -> object:
    """POST ``body`` as JSON to ``url`` and return the decoded reply.

    One short-lived session per call: these services are called a few times per step, and
    a session per call needs no shutdown hook in the runtime.
    """
    import aiohttp  # here: only runs that call such a service pay for importing it

    try:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as reply:
            if reply.status >= 400:
                text = (await reply.text())[:_SHOWN_CHARS]
                raise ModelCallError(
                    f"{url}: HTTP {reply.status}: {text}",
                    model=url,
                    retryable=reply.status in _RETRYABLE_STATUS,
                    status=reply.status,
                )
            try:
                data: object = await reply.json(content_type=None)
            except ValueError as e:
                raise ModelCallError(f"{url}: the reply is not JSON ({e})", model=url) from e
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ModelCallError(f"{url}: {type(e).__name__}: {e}", model=url, retryable=True) from e
    return data
