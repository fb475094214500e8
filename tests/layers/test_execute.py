"""execute: programs run in the real sandbox; what they print becomes the candidates' answers."""

from __future__ import annotations

from collections.abc import Sequence

from archon.layers.execute import Execute, ExecuteParams
from archon.runtime.clients.fake import ScriptedClient
from archon.testing import LayerContract
from archon.values import Candidate, Candidates, Payload

PROGRAMS = (
    "```python\nprint(72 * 53)\n```",  # prints 3816
    "print(sum(range(5)))",  # no fence: the whole text is the program; prints 10
    "```python\nraise ValueError('no')\n```",  # fails
    "x = 1",  # prints nothing
)


class TestExecuteContract(LayerContract):
    layer = Execute
    params = ExecuteParams(timeout_s=5.0)
    parses_output = False  # it runs programs, it parses no model reply
    texts: Sequence[str] = ()

    def make_inputs(self, n: int) -> Sequence[Payload]:
        texts = self.texts or [f"print({40 + i})" for i in range(n)]
        return (
            Candidates(
                items=tuple(
                    Candidate(text=t, model="m", sample_index=i) for i, t in enumerate(texts)
                )
            ),
        )


def _execute(texts: Sequence[str], **params: object) -> tuple[Candidates, list[str]]:
    contract = TestExecuteContract()
    contract.texts = texts
    contract.params = ExecuteParams.model_validate(params)  # type: ignore[misc]
    result = contract.run_sync(len(texts), ScriptedClient())
    assert isinstance(result.output, Candidates)
    return result.output, list(result.warnings)


def test_printed_results_replace_the_programs_and_failures_are_dropped() -> None:
    out, warnings = _execute(PROGRAMS)
    assert [c.text for c in out.items] == ["3816", "10"]
    assert [c.sample_index for c in out.items] == [0, 1]  # provenance kept
    assert all(c.signal("executed") == 1.0 for c in out.items)
    assert any("2 of 4 programs failed" in w for w in warnings)


def test_keep_leaves_failed_candidates_in_place_marked_as_not_executed() -> None:
    out, _ = _execute(PROGRAMS, on_failure="keep")
    assert [c.text for c in out.items][:2] == ["3816", "10"]
    assert out.items[2].text == PROGRAMS[2] and out.items[2].signal("executed") == 0.0
    assert len(out.items) == 4


def test_when_nothing_runs_the_candidates_pass_through_with_a_warning() -> None:
    out, warnings = _execute(["The answer is 7.", "raise SystemExit(3)"])
    assert [c.text for c in out.items] == ["The answer is 7.", "raise SystemExit(3)"]
    assert any("none of the 2 programs" in w for w in warnings)


def test_a_program_that_loops_is_stopped_by_the_time_limit() -> None:
    out, _ = _execute(["while True:\n    pass", "print(6 * 7)"], timeout_s=1.0)
    assert [c.text for c in out.items] == ["42"]


def test_estimate_costs_no_model_call() -> None:
    from archon.layers.base import Flow

    estimate = Execute.estimate(ExecuteParams(), 10, [Flow(items=5, tokens=100)])
    assert estimate.calls == () and estimate.output.items == 5
