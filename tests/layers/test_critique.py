"""critique: the contract, plus critiques attached per candidate in both modes."""

from __future__ import annotations

import re

from archon.layers.critique import Critique, CritiqueParams, split_sections
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import CompletionRequest


class TestCritiqueEach(LayerContract):
    layer = Critique
    params = CritiqueParams(model="judge")
    script = ((None, "Strengths: clear. Weaknesses: none."),)
    parses_output = False


class TestCritiqueAll(LayerContract):
    layer = Critique
    params = CritiqueParams(model="judge", mode="all")
    script = ((None, "[1]\nStrengths: a\n[2]\nWeaknesses: b\n[3]\nok\n[4]\nfine"),)


def _echo_candidate(request: CompletionRequest) -> str:
    found = re.search(r"Candidate (\d+)", request.messages[-1].content)
    return f"critique of {found.group(1) if found else '?'}"


def test_each_mode_attaches_the_critique_of_each_candidate() -> None:
    contract = TestCritiqueEach()
    client = ScriptedClient(_echo_candidate)
    result = contract.run_sync(3, client)
    items = result.output.items  # type: ignore[attr-defined]
    assert [c.critique for c in items] == [f"critique of {i}" for i in (1, 2, 3)]
    assert [c.text for c in items] == [c.text for c in contract.make_inputs(3)[0].items]  # type: ignore[attr-defined]
    assert client.calls == 3


def test_all_mode_splits_sections_in_one_call() -> None:
    contract = TestCritiqueAll()
    client = ScriptedClient([(None, "[2]\nsecond is weak\n[1]\nfirst is strong")])
    result = contract.run_sync(2, client)
    items = result.output.items  # type: ignore[attr-defined]
    assert client.calls == 1
    assert "first" in (items[0].critique or "") and "second" in (items[1].critique or "")


def test_all_mode_unsplittable_reply_goes_to_every_candidate_with_a_warning() -> None:
    result = TestCritiqueAll().run_sync(2, ScriptedClient([(None, "all fine")]))
    assert [c.critique for c in result.output.items] == ["all fine", "all fine"]  # type: ignore[attr-defined]
    assert any("section" in w for w in result.warnings)


def test_split_sections_requires_every_number() -> None:
    assert split_sections("[1]\na\n[3]\nc", 3) is None
    assert split_sections("Answer 1:\na\nAnswer 2:\nb", 2) == ["a", "b"]
