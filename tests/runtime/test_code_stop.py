"""``stop_after_code``: the fence reading, each backend's way of stopping, and the layers.

No model is loaded: the fence logic is pure, the engine's scanner is fed token pieces by
hand, API clients are checked on the scripted fake and a loopback OpenAI-compatible server
(the clients' shared checks are in :class:`archon.testing.ClientContract`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from archon import compile_source, run_sync
from archon.layers.answers import extract_code
from archon.layers.common import SamplingParams
from archon.runtime import cache_key
from archon.runtime.clients.base import ModelOptions
from archon.runtime.clients.code_stop import (
    FENCE_STOP,
    CodeStream,
    FenceTracker,
    close_code,
    cut_after_code,
)
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.local.batch import Job
from archon.runtime.clients.local.kv import StopScanner
from archon.runtime.clients.openai_compat import OpenAICompatClient
from archon.runtime.clients.translate import reply_text, stops
from archon.testing.openai_server import FakeOpenAIServer
from archon.values import CompletionRequest, CompletionResponse, Message

PROGRAM = "```python\ndef add(a, b):\n    return a + b\n```"
EXPLANATION = "\n\nThis function adds `a` and `b`.\n\n```python\nadd(1, 2)\n```\n"
REPLY = "Here is the function:\n\n" + PROGRAM + EXPLANATION


def request(**fields: object) -> CompletionRequest:
    values: dict[str, object] = {
        "model": "m",
        "messages": (Message(role="user", content="Write add(a, b)."),),
    }
    values.update(fields)
    return CompletionRequest(**values)  # type: ignore[arg-type]


def fed(pieces: Sequence[str], prefix: str = "") -> tuple[str, int]:
    """The text a scanner keeps when fed ``pieces`` one at a time, and how many it took."""
    scanner = StopScanner((), FenceTracker(prefix.encode()))
    for taken, piece in enumerate(pieces, 1):
        if scanner.feed(piece.encode()):
            return scanner.result(), taken
    return scanner.result(), len(pieces)


# --- reading fences -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (REPLY, "Here is the function:\n\n" + PROGRAM),
        (PROGRAM + "\nMore.", PROGRAM),
        ("Code:\n```\nx = 1\n```\nDone.", "Code:\n```\nx = 1\n```"),  # bare opening fence
        ("````md\n```python\nx\n```\n````\nEnd", "````md\n```python\nx\n```\n````"),
        # a fence line with an info string inside a block is content, not its end
        ("```python\nprint(1)\n```python\nx\n```\nz", "```python\nprint(1)\n```python\nx\n```"),
        ("  ```py\n  x = 1\n  ```\nafter", "  ```py\n  x = 1\n  ```"),  # indented (a list)
        ("```python\r\nx = 1\r\n```\r\nafter", "```python\r\nx = 1\r\n```"),
        ("```python\nx = 1\n``` \nafter", "```python\nx = 1\n```"),
        ("```python\nx = 1\n```", "```python\nx = 1\n```"),  # the reply ends at the fence
        ("no code at all", None),
        ("```python\nx = 1\n", None),  # never closed
        ("inline ```x``` is not a block\n", None),
    ],
)
def test_cut_after_code(text: str, kept: str | None) -> None:
    assert cut_after_code(text) == kept


def test_a_closing_fence_counts_once_its_line_is_complete() -> None:
    tracker = FenceTracker()
    assert tracker.feed(b"```python\nx = 1\n```") is None  # "```python" could follow
    assert tracker.open_fence == 3
    assert tracker.feed(b"\n") == len(b"```python\nx = 1\n```")
    assert FenceTracker().feed(b"```python\nx = 1\n``") is None
    finished = FenceTracker()
    finished.feed(b"```python\nx = 1\n```")
    assert finished.finish() == len(b"```python\nx = 1\n```")


def test_a_block_opened_by_the_prefix_closes_in_the_reply() -> None:
    assert cut_after_code("    return a\n```\nText", prefix="```python\ndef f(a):\n") == (
        "    return a\n```"
    )
    assert cut_after_code("\nText", prefix="```python\nx = 1\n```") == ""  # closed by the prefix
    # a block the prefix closed does not count: the reply's own block does
    assert cut_after_code("```py\ny\n```\nz", prefix="```py\nx\n```\n") == "```py\ny\n```"


def test_fences_split_over_tokens() -> None:
    pieces = [
        "Sure",
        ":\n",
        "``",
        "`py",
        "thon",
        "\n",
        "x = 1",
        "\n",
        "``",
        "`",
        "\n\n",
        "Th",
        "is",
    ]
    text, taken = fed(pieces)
    assert text == "Sure:\n```python\nx = 1\n```"
    assert taken == 11  # ends with the token that completes the closing line
    text, taken = fed(["```", "\n", "x\n", "```\n\nThis explains", " more"])
    assert text == "```\nx\n```" and taken == 4
    assert fed(["é", "\n```py\nx\n", "```\n", "After"]) == ("é\n```py\nx\n```", 3)


def test_the_scanner_ends_at_the_first_of_a_stop_string_and_the_block_end() -> None:
    scanner = StopScanner((b"STOP",), FenceTracker())
    assert not scanner.feed(b"```py\nx = 1\n")
    assert scanner.feed(b"STOP\n```\n")
    assert scanner.result() == "```py\nx = 1\n"
    scanner = StopScanner((b"After",), FenceTracker())
    assert scanner.feed(b"```py\nx = 1\n```\nAfter")
    assert scanner.result() == "```py\nx = 1\n```"


def test_a_job_scans_for_the_block_only_when_asked() -> None:
    plain = Job(model="m", tokens=(1,), max_new=8)
    asked = Job(model="m", tokens=(1,), max_new=8, stop_after_code=True, prefix=b"```py\n")
    assert not plain.scanner().feed(b"x\n```\n")
    scanner = asked.scanner()
    assert scanner.feed(b"x\n```\n") and scanner.result() == "x\n```"


# --- backends that stop on a string ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "```python\nx = 1\n```\n\nText",
        "Sure:\n\n```python\nx = 1\n```\n\nText",
        "```\nx = 1\n```\n\nText",  # a bare fence at the start
        "Sure:\n```py\nx = 1\n\n```\n\nText",
    ],
)
def test_the_fence_stop_never_matches_before_the_block_closes(text: str) -> None:
    block = cut_after_code(text)
    assert block is not None
    at = text.find(FENCE_STOP)
    assert at >= 0 and at + len("\n```") == len(block)
    assert close_code(text[:at]) == block


def test_close_code_repairs_a_reply_stopped_by_the_fence_stop() -> None:
    assert close_code("Sure:\n```python\nx = 1") == "Sure:\n```python\nx = 1\n```"
    assert close_code("```python\nx = 1\n") == "```python\nx = 1\n\n```"
    assert close_code("````md\nx") == "````md\nx\n````"
    assert close_code("```python\nx = 1", truncated=True) == "```python\nx = 1"  # max_tokens
    assert close_code(PROGRAM + "\nMore.") == PROGRAM  # the stop sequence missed: cut here
    assert close_code("plain prose") == "plain prose"
    assert close_code("    return a", prefix="```python\ndef f(a):\n") == "    return a\n```"


def test_a_code_stream_passes_pieces_until_the_block_ends() -> None:
    stream = CodeStream()
    pieces = ["Sure:\n``", "`py\nx = 1\n", "```\nThis", " explains"]
    assert [stream.take(p) for p in pieces] == ["Sure:\n``", "`py\nx = 1\n", "```", ""]
    assert stream.closed and stream.tail() == ""
    open_stream = CodeStream()
    assert open_stream.take("```py\nx = 1") == "```py\nx = 1"
    assert open_stream.tail() == "\n```"
    assert open_stream.tail(truncated=True) == ""


def test_requests_to_api_backends_carry_the_fence_stop() -> None:
    assert stops(request()) == []
    assert stops(request(stop=("END",))) == ["END"]
    assert stops(request(stop=("END",), stop_after_code=True)) == ["END", FENCE_STOP]
    assert reply_text(request(), "```py\nx", "stop") == "```py\nx"
    assert reply_text(request(stop_after_code=True), "```py\nx", "stop") == "```py\nx\n```"
    assert reply_text(request(stop_after_code=True), "```py\nx", "length") == "```py\nx"


def test_the_option_is_part_of_the_cache_key() -> None:
    plain, asked = request(), request(stop_after_code=True)
    assert cache_key(plain, 0, 1) != cache_key(asked, 0, 1)
    assert cache_key(plain, 0, 1) == cache_key(request(stop_after_code=False), 0, 1)


# --- the scripted fake and the layers ---------------------------------------------------------


def test_the_fake_ends_the_reply_after_the_block_and_counts_fewer_tokens() -> None:
    client = ScriptedClient([(None, REPLY)])
    plain = asyncio.run(client.complete(request()))
    asked = asyncio.run(client.complete(request(stop_after_code=True)))
    assert plain.completions[0].text == REPLY
    text = asked.completions[0].text
    assert text.endswith("```") and "This function" not in text
    assert extract_code(text) == extract_code(PROGRAM)
    assert asked.usage.completion_tokens < plain.usage.completion_tokens


def test_sampling_params_carry_the_option_and_stop_strings() -> None:
    params = SamplingParams(stop=("END",), stop_after_code=True)
    assert params.stop == ("END",) and params.stop_after_code
    assert not SamplingParams().stop_after_code and SamplingParams().stop == ()
    with pytest.raises(ValueError, match="empty"):
        SamplingParams(stop=("",))


PIPE = """
models {{ q = "local/m" }}
pipeline p {{ generate(models = [q], temperature = 0.0{extra}) }}
"""


def test_generate_with_stop_after_code_keeps_the_program_and_spends_fewer_tokens() -> None:
    def answer(extra: str) -> tuple[str, int, CompletionRequest]:
        client = ScriptedClient([(None, REPLY)])
        result = run_sync(compile_source(PIPE.format(extra=extra)), "add?", client=client)
        return result.answer, result.usage.completion_tokens, client.requests[0]

    plain_text, plain_tokens, plain_request = answer("")
    text, tokens, sent = answer(', stop_after_code = true, stop = ["<END>"]')
    assert not plain_request.stop_after_code and plain_request.stop == ()
    assert sent.stop_after_code and sent.stop == ("<END>",)
    assert plain_text == REPLY
    assert "This function" not in text and text.endswith("```")
    assert extract_code(text) == extract_code(PROGRAM)
    assert tokens < plain_tokens


# --- streaming from an OpenAI-compatible server ------------------------------------------------


def streamed(reply: str) -> tuple[list[str | CompletionResponse], list[dict[str, object]]]:
    """What the client streams of ``reply`` for a ``stop_after_code`` request, and the
    bodies the server got (the fake server ignores stop strings: the client cuts)."""

    async def go() -> tuple[list[str | CompletionResponse], list[dict[str, object]]]:
        async with FakeOpenAIServer(reply=reply, chunk_chars=3) as server:
            model = "openai/m"
            client = OpenAICompatClient({model: ModelOptions(api_base=server.url)})
            try:
                asked = request(model=model, stop_after_code=True)
                items = [item async for item in client.stream(asked)]
            finally:
                await client.aclose()
            return items, server.bodies

    return asyncio.run(go())


def test_a_stream_ends_at_the_closing_fence() -> None:
    items, bodies = streamed(PROGRAM + "\nThis function adds two numbers, and more text.")
    *pieces, final = items
    assert isinstance(final, CompletionResponse)
    assert "".join(str(p) for p in pieces) == final.completions[0].text == PROGRAM
    assert bodies[0]["stop"] == [FENCE_STOP]


def test_a_stream_whose_fence_the_server_removed_gets_it_back() -> None:
    items, _ = streamed("```python\nx = 1")
    *pieces, final = items
    assert isinstance(final, CompletionResponse)
    assert pieces[-1] == "\n```"
    assert "".join(str(p) for p in pieces) == final.completions[0].text == "```python\nx = 1\n```"
