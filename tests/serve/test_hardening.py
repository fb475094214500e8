"""Malformed requests get 400/401 (never 500); slow and excess connections cannot lock
clients out; floods of error lines are rate-limited."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archon.runtime.clients.fake import ScriptedClient
from archon.serve import ServeSettings
from archon.serve.guard import LogLimiter
from archon.serve.runner import FD_RESERVE, connection_cap

from .conftest import KEY, run, serving

AUTH = f"Bearer {KEY}".encode()
PATH = b"/v1/chat/completions"


def scripted() -> ScriptedClient:
    return ScriptedClient([(None, "ok")])


def request_bytes(body: bytes, headers: dict[bytes, bytes] | None = None) -> bytes:
    """A raw HTTP/1.1 POST of ``body`` with ``Connection: close``."""
    fields = {b"Host": b"127.0.0.1", b"Authorization": AUTH, b"Content-Type": b"application/json"}
    fields.update(headers or {})
    fields[b"Content-Length"] = str(len(body)).encode()
    fields[b"Connection"] = b"close"
    head = b"".join(name + b": " + value + b"\r\n" for name, value in fields.items())
    return b"POST " + PATH + b" HTTP/1.1\r\n" + head + b"\r\n" + body


async def exchange(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``raw`` and read one reply; returns the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.partition(": ")[::2] for line in lines[1:] if line)
            length = {k.lower(): v for k, v in fields.items()}.get("content-length")
            body = await (reader.readexactly(int(length)) if length else reader.read())
    finally:
        writer.close()
    return int(lines[0].split(" ", 2)[1]), body


def assert_openai_error(status: int, body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body[:300]
    error = json.loads(body)["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    return dict(error)


def test_huge_seed_deep_nesting_and_non_ascii_auth_are_client_errors() -> None:
    deep = b'{"model":"direct","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    seed = b'{"model":"direct","messages":[{"role":"user","content":"x"}],"seed":'
    seed += b"7" * 5000 + b"}"
    nested_role = b'{"model":"direct","messages":[{"role":' + b"[" * 900 + b"]" * 900 + b"}]}"

    async def main() -> None:
        async with serving(scripted(), settings=ServeSettings(api_key=KEY)) as s:
            port = s.server.port
            for body in (seed, deep, nested_role):
                status, reply = await exchange(port, request_bytes(body))
                error = assert_openai_error(status, reply, 400)
                assert error["type"] == "invalid_request_error"
                assert len(error["message"]) < 400
            bad_auth = request_bytes(b"{}", {b"Authorization": b"Bearer \xff\xfe\xc3("})
            status, reply = await exchange(port, bad_auth)
            assert assert_openai_error(status, reply, 401)["code"] == "invalid_api_key"
            garbage = b"\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03 not http\r\n\r\n"
            status, reply = await exchange(port, garbage)
            assert assert_openai_error(status, reply, 400)["code"] == "bad_http_request"

    run(main())


# --- fuzzing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port() -> Iterator[int]:
    """A server on its own event loop in a thread, for synchronous fuzzing."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    stop = threading.Event()

    async def main() -> None:
        async with serving(scripted(), settings=ServeSettings(api_key=KEY)) as s:
            ready["port"] = s.server.port
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while "port" not in ready and time.monotonic() < deadline:
        time.sleep(0.01)
    yield int(ready["port"])
    stop.set()
    thread.join(10)
    loop.close()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "model",
        "messages",
        "seed",
        "n",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "archon",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "modalities",
        "stop",
    ]
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | JSON, "content": JSON}
)
BODIES = st.one_of(
    st.dictionaries(FIELDS, JSON, max_size=6).map(lambda d: json.dumps(d).encode()),
    st.builds(
        lambda extra, messages: json.dumps(
            {"model": "direct", "messages": messages, **extra}
        ).encode(),
        st.dictionaries(FIELDS, JSON, max_size=3),
        st.lists(MESSAGE, max_size=3),
    ),
    st.binary(max_size=200),
)
HEADER_VALUE = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            b"Authorization",
            b"Content-Type",
            b"Content-Encoding",
            b"Transfer-Encoding",
            b"Accept",
            b"X-Odd",
            b"Expect",
        ]
    ),
    HEADER_VALUE,
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, headers=HEADERS)
def test_fuzzed_requests_never_get_500(
    live_port: int, body: bytes, headers: dict[bytes, bytes]
) -> None:
    async def main() -> None:
        status, reply = await exchange(live_port, request_bytes(body, headers))
        assert (status != 500 and 400 <= status < 500) or status == 200, (status, reply[:300])
        if status != 200:
            assert_openai_error(status, reply, status)
        ok = request_bytes(b'{"model":"direct","messages":[{"role":"user","content":"x"}]}')
        status, reply = await exchange(live_port, ok)
        assert status == 200, reply[:300]

    asyncio.run(main())


# --- slow and excess connections ----------------------------------------------------------


class _Capture:
    """Everything logged under the root logger while in use, as text."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)

    def __enter__(self) -> _Capture:
        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *_: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)

    @property
    def size(self) -> int:
        return len(self.stream.getvalue())


def test_slow_partial_requests_do_not_lock_clients_out() -> None:
    config = ServeSettings(api_key=KEY, header_timeout_s=1.0, max_connections=350)

    async def main() -> None:
        async with serving(scripted(), settings=config) as s:
            port = s.server.port
            slow = []
            for _ in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-a: ")
                slow.append((reader, writer))
            started = time.monotonic()
            ok = request_bytes(b'{"model":"direct","messages":[{"role":"user","content":"x"}]}')
            status, reply = await exchange(port, ok, timeout=2.0)
            assert status == 200, reply[:300]
            assert time.monotonic() - started < 2.0
            # over the cap (350): the longest-waiting slow ones are closed to make room
            excess = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
            closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 1.0) for r, _ in slow[:40]))
            assert closed == [b""] * 40
            # the slow ones are dropped once their header deadline passes
            dropped = await asyncio.gather(
                *(asyncio.wait_for(r.read(), 3.0) for r, _ in slow), return_exceptions=True
            )
            assert all(not isinstance(d, BaseException) for d in dropped)
            for _, writer in slow + excess:
                writer.close()
            # the freed slots serve again
            status, _ = await exchange(port, ok, timeout=2.0)
            assert status == 200

    with _Capture() as logs:
        started = time.monotonic()
        run(main())
    assert time.monotonic() - started < 15
    assert logs.size < 8_000, logs.stream.getvalue()[:2000]


def test_a_body_that_does_not_arrive_gets_408() -> None:
    config = ServeSettings(api_key=KEY, body_timeout_s=0.5)

    async def main() -> None:
        async with serving(scripted(), settings=config) as s:
            raw = request_bytes(b"x" * 100)[:-90]  # headers complete, most of the body missing
            status, reply = await exchange(s.server.port, raw, timeout=3.0)
            assert assert_openai_error(status, reply, 408)["code"] == "request_timeout"

    run(main())


def test_log_limiter_passes_a_few_then_summarizes() -> None:
    now = [0.0]
    limiter = LogLimiter(per_interval=3, interval_s=10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, None)

    passed = [limiter.filter(record("boom %s")) for _ in range(100)]
    assert passed.count(True) == 3
    assert limiter.filter(record("other"))
    now[0] = 11.0
    later = record("boom %s")
    assert limiter.filter(later)
    assert "97 similar messages suppressed" in str(later.msg)


def test_a_full_cap_of_slow_connections_makes_room_for_a_real_client() -> None:
    config = ServeSettings(api_key=KEY, header_timeout_s=30.0, max_connections=20)

    async def main() -> None:
        async with serving(scripted(), settings=config) as s:
            port = s.server.port
            slow = []
            for _ in range(40):  # twice the cap: the newer ones close the older ones
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-a: ")
                slow.append((reader, writer))
            ok = request_bytes(b'{"model":"direct","messages":[{"role":"user","content":"x"}]}')
            for _ in range(3):
                status, reply = await exchange(port, ok, timeout=2.0)
                assert status == 200, reply[:300]
            oldest = await asyncio.gather(*(asyncio.wait_for(r.read(), 1.0) for r, _ in slow[:20]))
            assert oldest == [b""] * 20
            for _, writer in slow:
                writer.close()

    run(main())


def test_the_connection_cap_leaves_file_descriptors_free() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(300, hard), hard))
    try:
        assert connection_cap(512) == min(300, hard) - FD_RESERVE
        assert connection_cap(10) == 10
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_log_limiter_flush_formats_the_held_back_message() -> None:
    limiter = LogLimiter(per_interval=1, interval_s=10.0, clock=lambda: 0.0)
    for n in range(3):
        record = logging.LogRecord("x.flush", logging.ERROR, __file__, 1, "refused %d", (n,), None)
        limiter.filter(record)
    with _Capture() as logs:
        limiter.flush()
    assert "refused 2 [further similar messages suppressed]" in logs.stream.getvalue()
