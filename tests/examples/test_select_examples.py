"""The selection templates: per-model cost of their roles, and selection end to end.

``code_select`` runs on the real sandbox when it has ``run_calls``, else on the in-process
stand-in (the programs are the test's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from archon import sandbox
from archon.compiler import compile_file
from archon.compiler.cost import estimate
from archon.compiler.structure import assign
from archon.ir import Pipeline, Value
from archon.layers import default_registry
from archon.runtime import Limits, RunResult, run_sync
from archon.runtime.clients.fake import ScriptedClient
from archon.testing.sandbox_stand_in import use_stand_in
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

EXAMPLES = Path(__file__).parents[2] / "examples"
SMALL, LARGE = "local/qwen2.5-coder-0.5b", "local/qwen2.5-coder-1.5b"


def _pipeline(name: str, params: Mapping[str, Value]) -> Pipeline:
    compiled = compile_file(EXAMPLES / f"{name}.pipe", default_registry())
    assert compiled is not None
    return assign(compiled, params, default_registry())[0]


def _run(pipeline: Pipeline, query: str, client: ScriptedClient) -> RunResult:
    return run_sync(
        pipeline,
        query,
        client=client,
        registry=default_registry(),
        limits=Limits(retries=0, timeout_s=30.0),
    )


def test_roles_on_different_models_are_costed_per_model() -> None:
    pipeline = _pipeline(
        "code_select",
        {"gen.models": [SMALL], "gen.samples": 6, "agree.model": LARGE, "judged.model": LARGE},
    )
    per_model = {cost.model: cost for cost in estimate(pipeline, default_registry()).per_model}
    assert set(per_model) == {SMALL, LARGE}
    assert per_model[SMALL].calls == 6  # the samples
    assert per_model[LARGE].calls == 1 + 6  # the input writer, then one verdict per sample
    assert per_model[LARGE].tokens_out == 256 * 7


def test_switching_off_the_verifier_saves_its_calls() -> None:
    cheap = estimate(_pipeline("code_select", {"judged.enabled": False}), default_registry())
    assert cheap.calls == 5 + 1


QUERY = '''def add(a, b):
    """Return the sum of a and b.
    >>> add(1, 2)
    3
    """
'''
PROGRAMS = (
    "```python\ndef add(a, b):\n    return a * b\n```",
    "```python\ndef add(a, b):\n    return a + b\n```",
    "```python\ndef add(a, b):\n    return a - b\n```",
    "```python\ndef add(a, b):\n    return b + a\n```",
    "```python\ndef add(a, b):\n    return sum((a, b))\n```",
)


def _code_client() -> ScriptedClient:
    samples: dict[int | None, str] = {}

    def reply(request: CompletionRequest) -> str:
        text = request.messages[-1].content
        if "test inputs" in text:
            return "```python\nadd(2, 3)\nadd(-4, 4)\nadd(10, 0)\n```"
        if "Verdict" in text:
            return "Verdict: Yes"  # a verifier that accepts everything adds no evidence
        return samples.setdefault(request.seed, PROGRAMS[len(samples) % len(PROGRAMS)])

    return ScriptedClient(reply)


@pytest.fixture
def some_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(sandbox, "run_calls"):
        use_stand_in(monkeypatch)


@pytest.mark.usefixtures("some_sandbox")
def test_code_select_picks_the_programs_that_agree_and_pass() -> None:
    pipeline = _pipeline("code_select", {})
    client = _code_client()
    result = _run(pipeline, QUERY, client)
    assert "a * b" not in result.answer and "a - b" not in result.answer
    assert "def add" in result.answer
    assert client.calls == 5 + 1 + 5 <= estimate(pipeline, default_registry()).calls


@pytest.mark.usefixtures("some_sandbox")
def test_code_select_without_combine_keeps_exec_votes_order() -> None:
    pipeline = _pipeline("code_select", {"pick.enabled": False, "judged.enabled": False})
    result = _run(pipeline, QUERY, _code_client())
    assert "return a + b" in result.answer  # the first member of the largest group


class ScoringClient(ScriptedClient):
    """Honours ``score_only``: a log-probability that prefers answers ending in 5."""

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        response = await super().complete(request)
        if not request.score_only:
            return response
        logprob = -0.05 if (request.assistant_prefix or "").endswith("5") else -5.0
        usage = Usage(calls=1, prompt_tokens=response.usage.prompt_tokens)
        return CompletionResponse(completions=(Completion(text="", logprob=logprob),), usage=usage)


def _math_client() -> ScoringClient:
    answers: dict[int | None, str] = {}
    texts = ("Answer: 7", "Answer: 5", "Answer: 7", "Answer: 5", "Answer: 7")

    def reply(request: CompletionRequest) -> str:
        if "Verdict" in request.messages[-1].content:
            return "Verdict: Yes"
        return answers.setdefault(request.seed, texts[len(answers) % len(texts)])

    return ScoringClient(reply)


def test_math_select_is_majority_vote_with_the_first_weights() -> None:
    result = _run(_pipeline("math_select", {}), "What is 3 + 4?", _math_client())
    assert result.answer == "Answer: 7"


def test_math_select_lets_likelihood_outweigh_a_narrow_majority() -> None:
    pipeline = _pipeline("math_select", {"pick.weights": [2.0, 2.0, 1.0]})
    client = _math_client()
    result = _run(pipeline, "What is 3 + 4?", client)
    # vote share 0.6 vs 0.4, likelihood exp(-5) vs exp(-0.05): 1.21 < 2.70
    assert result.answer == "Answer: 5"
    assert sum(r.score_only for r in client.requests) == 5
