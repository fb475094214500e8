"""``stream: true``: run a request and send its answer as OpenAI chunks over SSE.

The pipeline runs in a task that puts events on a queue: text pieces of the answer call
(direct pipelines), each choice's result, and the end (the answer or an error). The handler
forwards them as chunks and sends an SSE comment whenever ``keepalive_s`` pass without one.
When a choice finishes, whatever of its answer was not streamed yet is sent (all of it for a
pipeline that is not direct, or when the answer came from the cache).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from archon.errors import ArchonError
from archon.runtime import RunResult
from archon.serve.chat import ChatRequest
from archon.serve.engine import Answer, Engine
from archon.serve.errors import ApiError, error_response, internal_error
from archon.serve.responses import Chunks
from archon.serve.sse import EventStream, comment, event

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499
"""Status recorded in metrics when the client went away before the end (nginx's code)."""


@dataclass(frozen=True)
class _Event:
    kind: Literal["text", "result", "end", "error"]
    choice: int = 0
    text: str = ""
    result: RunResult | None = None
    answer: Answer | None = None
    error: ApiError | None = None


class _Queue:
    """The :class:`~archon.serve.engine.Listener` of a streamed request."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Event] = asyncio.Queue()

    def on_text(self, choice: int, text: str) -> None:
        self.queue.put_nowait(_Event("text", choice, text=text))

    def on_result(self, choice: int, result: RunResult) -> None:
        self.queue.put_nowait(_Event("result", choice, result=result))


async def _produce(
    engine: Engine,
    chat: ChatRequest,
    request_id: str,
    events: _Queue,
    headers: Mapping[str, str] | None = None,
) -> None:
    try:
        answer = await engine.answer(chat, request_id, events, headers=headers)
    except ArchonError as error:
        events.queue.put_nowait(_Event("error", error=engine.api_error(error)))
    except Exception:
        logger.exception("request %s failed", request_id)
        events.queue.put_nowait(_Event("error", error=internal_error()))
    else:
        events.queue.put_nowait(_Event("end", answer=answer))


async def stream_answer(
    request: web.Request,
    engine: Engine,
    chat: ChatRequest,
    request_id: str,
    *,
    created: int,
) -> tuple[web.StreamResponse, int]:
    """Answer ``chat`` as an SSE stream; returns the response and the status to record."""
    events = _Queue()
    task = asyncio.create_task(_produce(engine, chat, request_id, events, request.headers))
    out = EventStream(request, {"x-request-id": request_id})
    chunks = Chunks(request_id, chat.model, created)
    sender = _Sender(out, chunks, chat.n)
    try:
        return await _forward(events, sender, engine.settings.keepalive_s, chat)
    except ConnectionError:
        return out.response, CLIENT_CLOSED
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _Sender:
    """Writes chunks, tracking how much of each choice's answer has been sent."""

    def __init__(self, out: EventStream, chunks: Chunks, n: int) -> None:
        self.out = out
        self.chunks = chunks
        self.sent = [""] * n

    async def start(self) -> None:
        await self.out.start(event(self.chunks.role(len(self.sent))))

    async def text(self, choice: int, text: str) -> None:
        await self.start()
        self.sent[choice] += text
        await self.out.write(event(self.chunks.text(choice, text)))

    async def finish(self, choice: int, answer: str) -> None:
        sent = self.sent[choice]
        if answer.startswith(sent):
            if len(answer) > len(sent):
                await self.text(choice, answer[len(sent) :])
        else:
            logger.warning("choice %d: the streamed text differs from the answer", choice)
        await self.start()
        await self.out.write(event(self.chunks.finish(choice)))


async def _forward(
    events: _Queue, sender: _Sender, keepalive_s: float, chat: ChatRequest
) -> tuple[web.StreamResponse, int]:
    out = sender.out
    while True:
        try:
            item = await asyncio.wait_for(events.queue.get(), keepalive_s)
        except TimeoutError:
            await sender.start()
            await out.write(comment("keep-alive"))
            continue
        if item.kind == "text":
            await sender.text(item.choice, item.text)
        elif item.kind == "result" and item.result is not None:
            await sender.finish(item.choice, item.result.answer)
        elif item.kind == "end" and item.answer is not None:
            await sender.start()
            if chat.include_usage:
                await out.write(event(sender.chunks.usage(item.answer)))
            await out.close()
            return out.response, 200
        elif item.kind == "error" and item.error is not None:
            error = item.error
            if not out.started:
                return error_response(error), error.status
            await out.write(event(error.body()))
            await out.close()
            return out.response, error.status
