"""refine: the contract, a workspace-only refine context, rounds, budgets, early exit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import pytest

from archon.compiler import compile_source
from archon.compiler.cost import estimate
from archon.ir import Budget
from archon.layers import load_builtin_layers
from archon.layers.base import Flow
from archon.layers.refine import DISTILL_PROMPT, EMPTY_WORKSPACE, Refine, RefineParams, clip
from archon.layers.registry import Registry
from archon.runtime import Limits, RunResult, run, run_sync
from archon.runtime.clients.fake import ScriptedClient, last_user
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, CompletionRequest, Payload

WORKSPACE = "NOTES: the drafts reach 40 and 41; 6 x 7 = 42 is the right approach."


def is_distill(request: CompletionRequest) -> bool:
    """Whether ``request`` is a distill call (its prompt lists the drafts)."""
    return "Drafts:" in last_user(request)


def workspace_of(request: CompletionRequest) -> str:
    """The workspace a refine request shows."""
    match = re.search(r"Workspace:\n(.*?)\n\nQuery:", last_user(request), re.S)
    assert match is not None
    return match.group(1)


def reply(request: CompletionRequest) -> str:
    """Distill calls answer a workspace naming the number of drafts they read; refiners
    answer with their model and the workspace they saw."""
    if is_distill(request):
        drafts = len(re.findall(r"^\[\d+\] ", last_user(request), re.M))
        return f"{WORKSPACE} ({drafts} drafts read)"
    return f"{request.model} from <{workspace_of(request)}>: the answer is 42"


class TestRefineContract(LayerContract):
    layer = Refine
    params = RefineParams(model="distiller", models=("a", "b"), revisions=2)
    script = ((is_distill, WORKSPACE), (None, "revised by {model}: the answer is 42"))
    parses_output = False


def _run(
    params: RefineParams,
    client: ScriptedClient,
    n: int = 3,
    *,
    inputs: Sequence[Payload] | None = None,
    budget: Budget | None = None,
) -> RunResult:
    contract = TestRefineContract()
    contract.params = params  # type: ignore[misc]
    pipeline = contract.pipeline(contract.make_inputs(n) if inputs is None else inputs)
    if budget is not None:
        pipeline = pipeline.model_copy(update={"budget": budget})
    return asyncio.run(
        run(
            pipeline,
            contract.query,
            client=client,
            registry=contract.registry(),
            limits=Limits(max_concurrency=4, retries=0, timeout_s=10.0),
        )
    )


def _items(result: RunResult) -> tuple[Candidate, ...]:
    assert isinstance(result.output, Candidates)
    return result.output.items


def test_refiners_see_the_workspace_and_not_the_drafts() -> None:
    client = ScriptedClient(reply)
    _run(RefineParams(model="distiller", models=("a",), revisions=2), client, n=3)
    distill, *refines = client.requests
    assert is_distill(distill) and distill.model == "distiller"
    assert distill.temperature == 0.0 and distill.max_tokens == 256
    assert all(f"Candidate {i}: the answer is {39 + i}" in last_user(distill) for i in (1, 2, 3))
    assert len(refines) == 2
    for request in refines:
        prompt = "\n".join(m.content for m in request.messages)
        assert WORKSPACE in prompt
        assert "Candidate" not in prompt and "answer is 40" not in prompt
        assert "What is 6 times 7?" in prompt
        assert request.temperature == 0.7


def test_revisions_carry_their_lineage() -> None:
    client = ScriptedClient(reply)
    items = _items(_run(RefineParams(model="d", models=("a", "b"), revisions=2), client))
    assert [(c.model, c.sample_index) for c in items] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert all(c.source_node == "under_test" for c in items)
    assert all(c.signal("refine_round") == 1.0 for c in items)
    assert all(c.text.endswith("the answer is 42") for c in items)


def test_rounds_distill_the_previous_revisions() -> None:
    client = ScriptedClient(reply)
    params = RefineParams(model="d", models=("a", "b"), revisions=2, rounds=3, max_drafts=3)
    items = _items(_run(params, client, n=4))
    assert client.calls == 3 * (1 + 2 * 2)
    distills = [r for r in client.requests if is_distill(r)]
    assert len(distills) == 3
    assert "Candidate 1" in last_user(distills[0])
    for later in distills[1:]:  # later rounds read the revisions, never the drafts
        assert "Candidate" not in last_user(later)
        assert "[1] a from <" in last_user(later) and "[3] b from <" in last_user(later)
        assert last_user(later).count("the answer is 42") == 3  # max_drafts of the 4
    assert len(items) == 4 and all(c.signal("refine_round") == 3.0 for c in items)


def test_the_distiller_reads_at_most_max_drafts_clipped() -> None:
    long = "start " + "x" * 5000 + " Answer: 41"
    drafts = Candidates(items=tuple(Candidate(text=f"{long} #{i}") for i in range(6)))
    client = ScriptedClient(reply)
    params = RefineParams(model="d", max_drafts=2, draft_chars=300)
    items = _items(_run(params, client, inputs=[drafts]))
    distill = client.requests[0]
    assert "(2 drafts read)" in items[0].text
    prompt = last_user(distill)
    assert "[2] start" in prompt and "[3]" not in prompt
    assert prompt.count("Answer: 41 #") == 2 and "[...]" in prompt
    assert len(prompt) < 2 * 300 + len(DISTILL_PROMPT) + 100


def test_clip_keeps_the_beginning_and_the_end() -> None:
    assert clip("  short  ", 300) == "short"
    clipped = clip("a" * 500 + "END", 300)
    assert len(clipped) <= 300 and clipped.startswith("aaa") and clipped.endswith("END")


def test_models_default_to_the_distiller() -> None:
    client = ScriptedClient(reply)
    items = _items(_run(RefineParams(model="d", revisions=3), client))
    assert [r.model for r in client.requests] == ["d"] * 4
    assert [c.model for c in items] == ["d"] * 3


def test_keep_drafts_puts_the_drafts_after_the_revisions() -> None:
    client = ScriptedClient(reply)
    params = RefineParams(model="d", models=("a",), revisions=2, keep_drafts=True, rounds=2)
    items = _items(_run(params, client, n=3))
    assert [c.model for c in items] == ["a", "a", "m", "m", "m"]
    assert [c.text for c in items[2:]] == [
        f"Candidate {i}: the answer is {39 + i}." for i in (1, 2, 3)
    ]
    assert [c.signal("refine_round") for c in items[:2]] == [2.0, 2.0]


def test_prompt_overrides_for_both_steps() -> None:
    client = ScriptedClient([(is_distill, WORKSPACE), (None, "the answer is 42")])
    params = RefineParams(
        model="d",
        revisions=1,
        distill_prompt="Drafts:\n{candidates}\nn={n} {literal}",
        prompt="Notes={workspace} Q={query} {0.__class__}",
        system_prompt="Be terse.",
    )
    _run(params, client, n=2)
    distill, refine = client.requests
    assert last_user(distill).startswith("Drafts:\n[1] Candidate 1")
    assert last_user(distill).endswith("n=2 {literal}")
    assert last_user(refine).startswith(f"Notes={WORKSPACE} Q=What is 6")
    assert last_user(refine).endswith("{0.__class__}")
    assert refine.messages[0].content == "Be terse."
    assert distill.messages[0].content != "Be terse."


def test_an_empty_workspace_is_reported() -> None:
    client = ScriptedClient([(is_distill, "   "), (None, "fresh: the answer is 42")])
    result = _run(RefineParams(model="d", revisions=1), client)
    assert EMPTY_WORKSPACE in last_user(client.requests[1])
    assert any("empty workspace" in w for w in result.warnings)
    assert len(_items(result)) == 1


def test_no_drafts_means_no_call() -> None:
    client = ScriptedClient(reply)
    result = _run(RefineParams(model="d"), client, n=0)
    assert client.calls == 0 and _items(result) == ()
    assert any("no drafts" in w for w in result.warnings)


def test_budget_stops_before_a_round_that_does_not_fit() -> None:
    client = ScriptedClient(reply)
    params = RefineParams(model="d", models=("a",), revisions=2, rounds=4)
    result = _run(params, client, budget=Budget(calls=7))
    assert client.calls == 6  # two rounds of 1 + 2 calls; a third needs 3 and 1 is left
    assert any("refine stopped before round 3" in w for w in result.warnings)
    items = _items(result)
    assert len(items) == 2 and all(c.signal("refine_round") == 2.0 for c in items)


def test_a_budget_too_small_for_one_round_returns_the_drafts() -> None:
    client = ScriptedClient(reply)
    params = RefineParams(model="d", models=("a",), revisions=2)
    result = _run(params, client, n=3, budget=Budget(calls=2))
    assert client.calls == 0
    assert [c.text for c in _items(result)] == [
        f"Candidate {i}: the answer is {39 + i}." for i in (1, 2, 3)
    ]
    assert any("refine stopped before round 1" in w for w in result.warnings)


def test_budget_on_tokens_is_respected() -> None:
    client = ScriptedClient(reply)
    params = RefineParams(model="d", revisions=2, rounds=4, max_tokens=100)
    result = _run(params, client, budget=Budget(tokens=3000))
    assert result.usage.tokens <= 3000
    assert 0 < client.calls < 4 * 3
    assert any("refine stopped before round" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("models", "revisions", "rounds"), [(("a", "b"), 2, 2), (("a", "a", "b"), 1, 3)]
)
def test_estimate_equals_the_calls_made(
    models: tuple[str, ...], revisions: int, rounds: int
) -> None:
    params = RefineParams(model="d", models=models, revisions=revisions, rounds=rounds)
    client = ScriptedClient(reply)
    result = _run(params, client, n=3)
    bound = Refine.estimate(params, 64, [Flow(items=3, tokens=20)])
    assert sum(call.calls for call in bound.calls) == client.calls
    assert client.calls == rounds * (1 + revisions * len(models))
    assert bound.output.items == len(_items(result)) == revisions * len(models)
    per_model = {call.model: 0 for call in bound.calls}
    for call in bound.calls:
        per_model[call.model] += call.calls
    made = {model: sum(r.model == model for r in client.requests) for model in per_model}
    assert made == per_model


def test_estimate_counts_kept_drafts() -> None:
    params = RefineParams(model="d", models=("a", "b"), revisions=3, keep_drafts=True)
    assert Refine.estimate(params, 64, [Flow(items=5, tokens=20)]).output.items == 6 + 5
    plain = params.model_copy(update={"keep_drafts": False})
    assert Refine.estimate(plain, 64, [Flow(items=5, tokens=20)]).output.items == 6
    # more drafts than revisions: a budget stop before the first round returns the drafts
    assert Refine.estimate(plain, 64, [Flow(items=9, tokens=20)]).output.items == 9


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_builtin_layers()


GATED = """
pipeline gated {
  drafts = generate(models = ["m"], samples = 4, temperature = 0.8)
  consensus(extract = "number")
  exit_if(when = "agreement", threshold = 0.75)
  refine(model = "distiller", models = ["refiner"], revisions = 2)
  consensus(extract = "number")
}
"""


def test_exit_if_before_refine_skips_it_when_the_drafts_agree(registry: Registry) -> None:
    pipeline = compile_source(GATED, registry=registry)
    assert estimate(pipeline, registry).calls == 4 + 1 + 2
    client = ScriptedClient(lambda r: reply(r) if r.model != "m" else "The answer is 42")
    result = run_sync(pipeline, "6 * 7?", client=client, registry=registry)
    assert result.exited_at == "exit_if_1"
    assert [r.model for r in client.requests] == ["m"] * 4
    assert "refine_1" in result.skipped


def test_refine_runs_when_the_drafts_disagree(registry: Registry) -> None:
    pipeline = compile_source(GATED, registry=registry)
    split = iter(["The answer is 42", "The answer is 41", "The answer is 40", "The answer is 42"])
    client = ScriptedClient(lambda r: reply(r) if r.model != "m" else next(split))
    result = run_sync(pipeline, "6 * 7?", client=client, registry=registry)
    assert result.exited_at is None
    assert [r.model for r in client.requests] == ["m"] * 4 + ["distiller"] + ["refiner"] * 2
    assert result.answer.endswith("the answer is 42")
    assert result.answer.startswith("refiner from <")
