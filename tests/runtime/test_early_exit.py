"""Early exit (``exit_if``): compile, estimate, run, skip, and record the skipped stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon.compiler import compile_source
from archon.compiler.cost import estimate, estimate_range
from archon.layers import load_builtin_layers
from archon.layers.registry import Registry
from archon.runtime import run_sync
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Candidates

QUERY = '''def double(x):
    """Return twice x.
    >>> double(2)
    4
    >>> double(5)
    10
    """
'''

RIGHT = "```python\ndef double(x):\n    return 2 * x\n```"
WRONG = "```python\ndef double(x):\n    return x + 2\n```"

STAGED = """
pipeline staged {
  first = generate(models = ["big"], temperature = 0.0)
  exit_if(when = "tests_pass")
  more = generate(models = ["small"], samples = 3, temperature = 0.8)
  pick = exec_vote() <- first, more
}
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_builtin_layers()


def _client(big: str, small: str = RIGHT) -> ScriptedClient:
    return ScriptedClient(lambda r: big if r.model == "big" else small)


def test_a_passing_first_stage_skips_the_rest(registry: Registry) -> None:
    pipeline = compile_source(STAGED, registry=registry)
    client = _client(RIGHT)
    result = run_sync(pipeline, QUERY, client=client, registry=registry)
    assert client.calls == 1  # the three samples never ran
    assert result.usage.calls == 1
    assert "return 2 * x" in result.answer
    assert result.exited_at == "exit_if_1"
    assert result.skipped == ("more", "pick")
    (record,) = result.exits
    assert record.exit and "2/2" in record.reason
    assert [node for node, _ in result.node_outputs] == ["first", "exit_if_1"]


def test_a_failing_first_stage_runs_every_stage(registry: Registry) -> None:
    pipeline = compile_source(STAGED, registry=registry)
    client = _client(WRONG, RIGHT)
    result = run_sync(pipeline, QUERY, client=client, registry=registry)
    assert client.calls == 4
    assert result.exited_at is None and result.skipped == ()
    (record,) = result.exits
    assert not record.exit and "1/2" in record.reason  # x + 2 is right for 2 only
    assert "return 2 * x" in result.answer  # the vote of the later stage answered
    assert [node for node, _ in result.node_outputs] == ["first", "exit_if_1", "more", "pick"]


def test_later_stages_wait_for_the_gate(registry: Registry) -> None:
    """Independent nodes after a gate are not started early: a query that exits never
    pays for them, even though they read nothing from the first stage."""
    pipeline = compile_source(STAGED, registry=registry)
    client = _client(RIGHT)
    run_sync(pipeline, QUERY, client=client, registry=registry)
    assert [r.model for r in client.requests] == ["big"]


def test_without_stated_tests_the_gate_never_exits(registry: Registry) -> None:
    pipeline = compile_source(STAGED, registry=registry)
    client = _client(RIGHT)
    result = run_sync(
        pipeline, "Write a function that doubles x.", client=client, registry=registry
    )
    assert client.calls == 4
    assert not result.exits[0].exit
    assert "fewer than min_tests" in result.exits[0].reason


def test_agreement_gate_exits_on_a_clear_majority(registry: Registry) -> None:
    source = """
pipeline agree {
  votes = generate(models = ["m"], samples = 4, temperature = 0.8)
  v = consensus() <- votes
  exit_if(when = "agreement", threshold = 0.7)
  fuse(models = ["judge"])
}
"""
    pipeline = compile_source(source, registry=registry)
    client = ScriptedClient(lambda r: "fused" if r.model == "judge" else "The answer is 42")
    result = run_sync(pipeline, "6 * 7?", client=client, registry=registry)
    assert result.exited_at == "exit_if_1"
    assert [r.model for r in client.requests].count("judge") == 0
    split = iter(["42", "42", "41", "40"])
    client = ScriptedClient(lambda r: "fused" if r.model == "judge" else next(split))
    result = run_sync(pipeline, "6 * 7?", client=client, registry=registry)
    assert result.exited_at is None
    assert result.answer == "fused"


def test_score_gate_reads_the_leading_score(registry: Registry) -> None:
    source = """
pipeline scored {
  cands = generate(models = ["m"], samples = 2)
  ranked = rank(model = "judge", mode = "score")
  exit_if(when = "score", threshold = 0.5)
  fuse(models = ["m"])
}
"""
    pipeline = compile_source(source, registry=registry)
    result = run_sync(pipeline, "q", client=ScriptedClient(), registry=registry)
    record = result.exits[0]
    assert record.reason.startswith(("leading score", "the leading candidate has no score"))
    assert record.exit == (result.skipped == ("fuse_1",))


def test_estimate_gives_upper_and_lower_bounds(registry: Registry) -> None:
    pipeline = compile_source(STAGED, registry=registry)
    cost = estimate(pipeline, registry)
    assert cost.calls == 4  # every stage
    assert cost.min_calls == 1  # a query that stops at the gate
    assert cost.floor_tokens < cost.tokens
    without = compile_source(STAGED.replace('exit_if(when = "tests_pass")', ""), registry=registry)
    plain = estimate(without, registry)
    assert plain.min_calls is None and plain.floor_calls == plain.calls == 4


def test_the_range_of_a_template_carries_the_exit_floor(registry: Registry) -> None:
    template = STAGED.replace("samples = 3", "samples = int(1, 4)").replace(
        'exit_if(when = "tests_pass")', 'optional exit_if(when = "tests_pass")'
    )
    cost = estimate_range(compile_source(template, registry=registry), registry)
    assert (cost.min_calls, cost.max_calls) == (2, 5)
    assert cost.exit_calls == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('when = "signal"', "needs the signal"),
        ('when = "score", signal = "judge"', "only with"),
        ('when = "agreement", threshold = 2.0', "at most 1.0"),
        ('when = "soon"', "when"),
    ],
)
def test_bad_conditions_are_compile_errors(
    registry: Registry, arguments: str, message: str
) -> None:
    source = STAGED.replace('exit_if(when = "tests_pass")', f"exit_if({arguments})")
    with pytest.raises(Exception, match=message):
        compile_source(source, registry=registry)


def test_output_of_an_exit_is_the_gate_input(registry: Registry) -> None:
    pipeline = compile_source(STAGED, registry=registry)
    result = run_sync(pipeline, QUERY, client=_client(RIGHT), registry=registry)
    assert isinstance(result.output, Candidates)
    assert result.output.items[0].signal("tests_passed") == 1.0


def test_fmt_round_trip_and_builder(registry: Registry) -> None:
    from archon.build import Pipeline as Builder
    from archon.dsl.parser import parse
    from archon.dsl.printer import print_file

    template = STAGED.replace(
        'exit_if(when = "tests_pass")',
        'optional exit_if(when = "agreement", threshold = float(0.5, 1.0))',
    )
    printed = print_file(parse(template, "<t>"))
    assert print_file(parse(printed, "<t>")) == printed
    assert compile_source(printed, registry=registry).fingerprint() == (
        compile_source(template, registry=registry).fingerprint()
    )
    built = (
        Builder("staged")
        .generate(models=["big"], temperature=0.0, label="first")
        .exit_if(when="tests_pass")
        .generate(models=["small"], samples=3, temperature=0.8, label="more")
        .exec_vote(inputs=["first", "more"], label="pick")
    )
    assert built.compile().fingerprint() == compile_source(STAGED, registry=registry).fingerprint()


def test_graph_draws_gates_as_diamonds(registry: Registry) -> None:
    from archon.compiler.graph import to_dot, to_mermaid

    pipeline = compile_source(STAGED, registry=registry)
    assert '"exit_if_1" [label="exit_if\\nwhen=tests_pass", shape=diamond]' in to_dot(pipeline)
    assert '{"exit_if"}' in to_mermaid(pipeline)


def test_summary_spreads_calls_and_tokens_per_query() -> None:
    from archon.eval.records import ItemRecord, ModelUsage
    from archon.eval.summary import summarize
    from archon.values import Usage

    records = [
        ItemRecord(id="a", usage=Usage(calls=1, prompt_tokens=10), exited_at="exit_if_1"),
        ItemRecord(id="b", usage=Usage(calls=1, prompt_tokens=10), exited_at="exit_if_1"),
        ItemRecord(
            id="c",
            usage=Usage(calls=2, prompt_tokens=30),
            cache_hits=4,
            by_model=(ModelUsage(model="m", calls=2, cache_hits=4, cached_tokens=60),),
        ),
    ]
    spread = summarize(records).cost.per_query
    assert spread is not None
    assert (spread.calls.mean, spread.calls.median, spread.calls.max) == (8 / 3, 1, 6)
    assert (spread.tokens.median, spread.tokens.max) == (10, 90)
    assert spread.exited == 2


def test_the_trace_records_each_gate_and_the_skipped_nodes(
    registry: Registry, tmp_path: Path
) -> None:
    from archon.runtime import JsonlTrace, MemoryTrace
    from archon.runtime.trace import read_stages, read_trace

    pipeline = compile_source(STAGED, registry=registry)
    memory = MemoryTrace()
    run_sync(pipeline, QUERY, client=_client(RIGHT), registry=registry, trace=memory)
    (stage,) = memory.stages
    assert stage.node_id == "exit_if_1" and stage.exit and stage.skipped == ("more", "pick")
    path = tmp_path / "trace.jsonl"
    with JsonlTrace(path) as sink:
        run_sync(pipeline, QUERY, client=_client(WRONG), registry=registry, trace=sink)
    assert len(read_trace(path)) == 4  # the calls, stage lines left out
    (decision,) = read_stages(path)
    assert not decision.exit and decision.skipped == ()


def test_a_gate_with_nothing_after_it_is_a_warning(registry: Registry) -> None:
    from archon.compiler import compile_program
    from archon.compiler.load import load_source
    from archon.source import SourceFile

    source = STAGED.split("  more =")[0] + "}\n"
    program = load_source(SourceFile("<t>", source))
    diagnostics = compile_program(program, registry).diagnostics
    assert [d.code for d in diagnostics] == ["W402"]
    assert "no later stage" in diagnostics[0].message
    clean = compile_program(load_source(SourceFile("<t>", STAGED)), registry).diagnostics
    assert not clean


def test_a_node_listed_after_a_gate_it_feeds_does_not_wait_for_it(registry: Registry) -> None:
    """A hand-built pipeline may list nodes in any topological order; a gate's own inputs
    never wait for the gate (no deadlock)."""
    pipeline = compile_source(STAGED, registry=registry)
    nodes = {node.id: node for node in pipeline.nodes}
    reordered = pipeline.model_copy(
        update={"nodes": tuple(nodes[n] for n in ("exit_if_1", "first", "more", "pick"))}
    )
    result = run_sync(reordered, QUERY, client=_client(RIGHT), registry=registry)
    assert result.exited_at == "exit_if_1"
    assert result.skipped == ("more", "pick")
