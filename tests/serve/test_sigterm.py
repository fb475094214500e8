"""``python -m archon serve`` as a process: SIGTERM with requests in flight loses none."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import openai

from archon.runtime import read_trace
from archon.testing.openai_server import FakeOpenAIServer

from .conftest import KEY, start_cli, user

IN_FLIGHT = 6


async def _until(condition: object, seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


def test_sigterm_finishes_requests_in_flight_then_exits_0(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"

    async def main() -> tuple[int, bytes]:
        async with FakeOpenAIServer(latency_s=1.0, reply="slow answer to {query}") as fake:
            pipe = tmp_path / "slow.pipe"
            pipe.write_text(
                f'models {{ m = model("openai/fake", api_base = "{fake.url}") }}\n'
                "pipeline slow { generate(models = [m], max_tokens = 16) }\n"
            )
            process, url = await start_cli(
                [str(pipe), "--no-cache", "--trace", str(trace), "--keepalive", "0.2"],
                home=tmp_path / "home",
            )
            client = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=30)

            async def streamed() -> str:
                stream = await client.chat.completions.create(
                    model="slow", messages=user("streamed"), stream=True
                )
                return "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )

            plain = [
                asyncio.create_task(
                    client.chat.completions.create(model="slow", messages=user(f"q{i}"))
                )
                for i in range(IN_FLIGHT)
            ]
            stream = asyncio.create_task(streamed())
            await _until(lambda: fake.received == IN_FLIGHT + 1, 30)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # No new connections once stopping; the requests in flight still finish.
            late = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=5)
            try:
                await late.chat.completions.create(model="slow", messages=user("late"))
                refused = False
            except openai.APIConnectionError:
                refused = True
            await late.close()
            replies = await asyncio.gather(*plain)
            assert [r.choices[0].message.content for r in replies] == [
                f"slow answer to q{i}" for i in range(IN_FLIGHT)
            ]
            assert await stream == "slow answer to streamed"
            await client.close()
            code = await asyncio.wait_for(process.wait(), 60)
            assert process.stderr is not None
            assert refused, "a new request was accepted after SIGTERM"
            return code, await process.stderr.read()

    code, stderr = asyncio.run(main())
    assert code == 0, stderr.decode()
    assert b"stopped" in stderr and b"Traceback" not in stderr
    records = read_trace(trace)
    assert len(records) == IN_FLIGHT + 1
    assert all(r.error is None and r.request_id for r in records)
