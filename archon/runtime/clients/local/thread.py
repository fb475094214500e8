"""The embedded engine's thread: one :class:`~archon.runtime.clients.local.batch.Scheduler`
serving coroutines from any event loop.

Requests are posted to an inbox; the thread moves them into the scheduler between decode
steps and hands each result back to its awaiting coroutine with
``loop.call_soon_threadsafe``, so the event loop never waits on the engine. No llama.cpp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.local.batch import Job, Outcome, Scheduler

logger = logging.getLogger(__name__)


class Engine:
    """A :class:`Scheduler` in its own thread, serving coroutines from any event loop.

    Args:
        scheduler: the scheduler (its backend is only touched from the engine thread).
        name: the thread's name.
        decode_lock: held around each step; engines of one client share it so that two
            models never decode at once on the same cores.
        on_close: called in the engine thread after it stops (frees the native context).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        name: str = "archon-local-engine",
        decode_lock: threading.Lock | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._decode_lock = decode_lock or threading.Lock()
        self._on_close = on_close
        self._wake = threading.Condition()
        self._inbox: deque[tuple[str, Any]] = deque()
        self._stopping = False
        self._broken: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    async def run(self, job: Job) -> Outcome:
        """Serve ``job``; cancelling the awaiting task stops its sequence and frees its slot."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def settle(value: Outcome | BaseException) -> None:
            def apply() -> None:
                if future.done():
                    return
                if isinstance(value, BaseException):
                    future.set_exception(value)
                else:
                    future.set_result(value)

            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(apply)

        ticket: dict[str, Any] = {"job": job, "done": settle}
        self._post("submit", ticket)
        try:
            return await future
        except asyncio.CancelledError:
            self._post("cancel", ticket)
            raise

    def _post(self, kind: str, ticket: dict[str, Any]) -> None:
        with self._wake:
            if self._stopping or self._broken is not None:
                error = ModelCallError(
                    f"{ticket['job'].model}: the local engine is closed", model=ticket["job"].model
                )
                if kind == "submit":
                    ticket["done"](error)
                return
            self._inbox.append((kind, ticket))
            self._wake.notify()

    def _drain(self, idle: bool) -> bool:
        """Move posted requests into the scheduler; False once the engine should stop.

        Waits for a request first when the scheduler has nothing it can do (``idle``).
        """
        with self._wake:
            while not self._inbox and not self._stopping and (idle or not self._scheduler.busy):
                self._wake.wait()
                idle = False
            items = list(self._inbox)
            self._inbox.clear()
            stopping = self._stopping
        for kind, ticket in items:
            if kind == "submit":
                ticket["seq"] = self._scheduler.submit(ticket["job"], ticket["done"])
            elif "seq" in ticket:
                self._scheduler.cancel(ticket["seq"])
        return not stopping

    def _main(self) -> None:
        try:
            idle = False
            while self._drain(idle):
                try:
                    with self._decode_lock:
                        idle = not self._scheduler.step()
                except Exception as e:  # a bug or a native failure: fail requests, keep going
                    logger.exception("local engine step failed")
                    self._scheduler.fail_all(ModelCallError(f"local engine failed: {e}"))
        except BaseException as e:
            self._broken = e
            raise
        finally:
            closed = ModelCallError("the local engine was closed while the request ran")
            with self._wake:
                self._stopping = True
                items = list(self._inbox)
                self._inbox.clear()
            for kind, ticket in items:
                if kind == "submit":
                    ticket["done"](closed)
            self._scheduler.fail_all(closed)
            if self._on_close is not None:
                self._on_close()

    def close(self) -> None:
        """Stop the thread (failing what is still queued) and free the native context."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()
