"""The batched embedded engine on a real model (SmolLM2-135M; integration, offline).

Plumbing only: SmolLM2's answers are mostly wrong, so no wording is asserted. What must hold:
the prompt is what llama-cpp-python's ``create_chat_completion`` would feed the model;
concurrent samples are decoded together, keep their seeds and match their solo runs; the
sequential kernels give llama-cpp-python's own answers; logprobs, ``assistant_prefix`` and
``score_only`` work; cancelling frees a slot; two models run at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest

from archon.runtime import Limits, Meter
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.code_stop import cut_after_code
from archon.runtime.clients.local.client import LocalClient
from archon.runtime.clients.local.engine import EngineConfig, LlamaBackend
from archon.runtime.clients.local.models import pull
from archon.runtime.context import NodeContext, QueryState, derive_seed
from archon.runtime.env import RunEnv
from archon.values import CompletionRequest, CompletionResponse, Message

pytestmark = pytest.mark.integration
MODEL = "local/smol"
QUESTION = (Message(role="user", content="What is the capital of France?"),)


@pytest.fixture(scope="module")
def smollm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    return pull("smollm2-135m", tmp_path_factory.mktemp("archon_home"), hub_timeout_s=3.0)


def request(**kw: Any) -> CompletionRequest:
    fields: dict[str, Any] = {"model": MODEL, "messages": QUESTION, "max_tokens": 12}
    fields.update(kw)
    return CompletionRequest(**fields)


def text(response: CompletionResponse) -> str:
    return response.completions[0].text


def client(path: Path, **kw: Any) -> LocalClient:
    kw.setdefault("tune_rows", False)  # keeps loading fast; the timing is not under test
    return LocalClient(paths={"*": path}, n_threads=2, **kw)


def test_prompt_tokens_are_what_create_chat_completion_feeds_the_model(smollm: Path) -> None:
    from llama_cpp import Llama

    messages = (
        Message(role="system", content="Answer briefly."),
        Message(role="user", content="Name a colour <b>in</b> French."),
    )
    llm = Llama(model_path=str(smollm), n_ctx=512, verbose=False)
    captured: dict[str, Any] = {}

    def capture(**kwargs: Any) -> Any:
        captured.update(kwargs)
        raise RuntimeError("captured")

    llm.create_completion = capture  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="captured"):
        llm.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in messages], stop=["Z"]
        )
    llm.close()
    backend = LlamaBackend(smollm, EngineConfig(n_ctx=512, n_seq_max=1))
    try:
        job = backend.prepare(request(messages=messages, stop=("Z",)))
    finally:
        backend.close()
    assert list(job.tokens) == list(captured["prompt"])
    assert [s.decode() for s in job.stops] == list(captured["stop"])


def test_five_samples_are_batched_keep_their_seeds_and_match_solo_runs(
    smollm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> tuple[CompletionResponse, list[str]]:
        local = client(smollm)
        state = QueryState(
            env=RunEnv(client=local, limits=Limits(), seed=7), meter=Meter(), query=QUESTION
        )
        ctx = NodeContext(state, "gen")
        try:
            with caplog.at_level(logging.DEBUG, logger="archon.runtime.clients.local.batch"):
                batched = await ctx.complete(request(n=5, temperature=0.9, max_tokens=16))
            solo = [
                text(await local.complete(request(temperature=0.9, max_tokens=16, seed=s)))
                for s in (derive_seed(7, i) for i in range(5))
            ]
        finally:
            await local.aclose()
        return batched, solo

    batched, solo = asyncio.run(main())
    assert [c.text for c in batched.completions] == solo  # sample i has seed derive_seed(7, i)
    assert len(set(solo)) > 1
    assert batched.usage.calls == 5 and batched.usage.completion_tokens > 0
    shared = [int(m) for m in re.findall(r"\((\d+) shared\)", caplog.text)]
    assert len(shared) == 5 and sum(1 for n in shared if n > 0) >= 4  # one prompt evaluation


def test_a_rows_logits_do_not_depend_on_the_rest_of_the_batch(smollm: Path) -> None:
    """The batch-invariant kernels: one token's logits are bit-identical whether it is
    decoded alone, next to other sequences' tokens, or inside another prompt's long chunk."""
    import numpy as np

    from archon.runtime.clients.local.batch import Row

    backend = LlamaBackend(smollm, EngineConfig(n_ctx=1024, n_seq_max=8))
    try:
        prompt = list(backend.prepare(request()).tokens)
        filler = list(
            backend.prepare(request(messages=(Message(role="user", content="x " * 80),))).tokens
        )
        backend.decode([Row(t, i, 0, False) for i, t in enumerate(prompt[:-1])])
        for slot in range(1, 8):
            backend.decode([Row(t, i, slot, False) for i, t in enumerate(filler[:20])])
        last = Row(prompt[-1], len(prompt) - 1, 0, True)
        batches = {
            "alone": [last],
            "pair": [Row(filler[20], 20, 1, True), last],
            "eight": [*(Row(filler[20], 20, s, True) for s in range(1, 8)), last],
            "long": [*(Row(t, i, 1, False) for i, t in enumerate(filler[20:90], 20)), last],
        }
        logits = {}
        for name, rows in batches.items():
            backend.decode(rows)
            pointer = backend._lc.llama_get_logits_ith(backend._ctx.ctx, len(rows) - 1)
            logits[name] = np.ctypeslib.as_array(pointer, shape=(backend.n_vocab,)).copy()
            for slot in {row.slot for row in rows}:
                backend.seq_rm(slot, len(prompt) - 1 if slot == 0 else 20)
    finally:
        backend.close()
    for name, values in logits.items():
        assert np.array_equal(values, logits["alone"]), name


def test_sequential_kernels_give_llama_cpp_pythons_answers(smollm: Path) -> None:
    """With ``batch_invariant=False`` the engine runs llama-cpp-python's kernels and sampler
    chain: a request alone gives ``create_chat_completion``'s text, greedy or seeded."""
    requests = [request(temperature=0.0, max_tokens=20, logprobs=True)] + [
        request(temperature=0.8, max_tokens=20, seed=s) for s in (1, 2)
    ]

    async def main() -> tuple[list[CompletionResponse], list[CompletionResponse]]:
        # No prefix reuse on either side: each prompt is evaluated from scratch, as a fresh
        # Llama does (reusing a prefix changes which kernels computed the KV).
        engine = client(smollm, batch_invariant=False, prefix_cache=False)
        ours, theirs = [], []
        try:
            for r in requests:
                ours.append(await engine.complete(r))
                sequential = client(smollm, batched=False)
                try:
                    theirs.append(await sequential.complete(r))
                finally:
                    await sequential.aclose()
        finally:
            await engine.aclose()
        return ours, theirs

    ours, theirs = asyncio.run(main())
    assert [text(r) for r in ours] == [text(r) for r in theirs]
    assert [r.usage for r in ours] == [r.usage for r in theirs]
    mine, reference = ours[0].completions[0].logprob, theirs[0].completions[0].logprob
    assert mine is not None and reference is not None and mine < 0
    assert mine == pytest.approx(reference, abs=1e-3)


def test_assistant_prefix_continues_and_score_only_scores(smollm: Path) -> None:
    prefix = "The capital of France is"

    async def main() -> list[CompletionResponse]:
        local = client(smollm)
        try:
            return [
                await local.complete(request()),
                await local.complete(request(assistant_prefix=prefix, temperature=0.0)),
                await local.complete(request(assistant_prefix=prefix + " Paris.", score_only=True)),
                await local.complete(
                    request(assistant_prefix="Zebra ukulele quantum marmalade.", score_only=True)
                ),
            ]
        finally:
            await local.aclose()

    plain, continued, likely, unlikely = asyncio.run(main())
    assert text(continued).strip() and not text(continued).startswith(prefix)
    assert continued.usage.prompt_tokens > plain.usage.prompt_tokens  # the prefix is prompt
    for scored in (likely, unlikely):
        assert text(scored) == "" and scored.usage.completion_tokens == 0
        logprob = scored.completions[0].logprob
        assert logprob is not None and math.isfinite(logprob) and logprob < 0
    assert likely.completions[0].logprob > unlikely.completions[0].logprob  # type: ignore[operator]


def test_stop_after_code_ends_the_reply_at_the_closing_fence(smollm: Path) -> None:
    """The engine stops once the code block is closed, and the sequential path on the fence
    stop string: what the plain reply says after its block is neither generated nor kept.
    Nothing about the wording is asserted, only where the replies end."""
    ask = (Message(role="user", content="Write a Python function add(a, b)."),)
    prefix = "```python\ndef add(a, b):\n"  # the block is opened in the prefix

    def coding(**kw: Any) -> CompletionRequest:
        return request(messages=ask, temperature=0.0, max_tokens=96, **kw)

    async def main() -> list[CompletionResponse]:
        batched, sequential = client(smollm), client(smollm, batched=False)
        try:
            return [
                await batched.complete(coding(assistant_prefix=prefix)),
                await batched.complete(coding(assistant_prefix=prefix, stop_after_code=True)),
                await sequential.complete(coding()),
                await sequential.complete(coding(stop_after_code=True)),
            ]
        finally:
            await batched.aclose()
            await sequential.aclose()

    replies = asyncio.run(main())
    for (plain, stopped), start in ((replies[:2], prefix), (replies[2:], "")):
        block = cut_after_code(text(plain), start)
        if block is None or not text(plain)[len(block) :].strip():
            pytest.skip("the model wrote nothing after a closed code block")
        assert text(stopped) == block  # greedy: the same reply, ending at the closing fence
        assert stopped.completions[0].finish_reason == "stop"
        assert stopped.usage.completion_tokens < plain.usage.completion_tokens


def test_cancelling_a_call_frees_its_slot(smollm: Path) -> None:
    async def main() -> CompletionResponse:
        local = client(smollm, n_seq_max=1)
        try:
            long = asyncio.create_task(local.complete(request(max_tokens=3000, temperature=0.0)))
            await asyncio.sleep(2.0)  # loaded and generating
            long.cancel()
            with pytest.raises(asyncio.CancelledError):
                await long
            # With the only slot still taken this would wait for 3000 tokens.
            return await asyncio.wait_for(local.complete(request(max_tokens=4)), timeout=60)
        finally:
            await local.aclose()

    assert asyncio.run(main()).usage.completion_tokens > 0


def test_two_models_are_loaded_and_served_at_once(smollm: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.symlink_to(smollm)  # a second file: its own engine, context and thread

    async def main() -> list[CompletionResponse]:
        local = LocalClient(paths={"a": smollm, "b": other}, n_threads=2, tune_rows=False)
        try:
            calls = [request(model=f"local/{m}", seed=i) for i, m in enumerate("abab")]
            responses = await asyncio.gather(*map(local.complete, calls))
            assert len(local._engines) == 2
            return list(responses)
        finally:
            await local.aclose()

    assert all(r.usage.completion_tokens > 0 for r in asyncio.run(main()))


def test_a_prompt_longer_than_the_window_is_a_clear_error(smollm: Path) -> None:
    long = request(messages=(Message(role="user", content="word " * 400),))

    async def main() -> None:
        local = client(smollm, n_ctx=256)
        try:
            await local.complete(long)
        finally:
            await local.aclose()

    with pytest.raises(ModelCallError, match="context window") as info:
        asyncio.run(main())
    assert not info.value.retryable
