"""evaluate() on the ScriptedClient: exactly known scores, candidates, failures, budgets,
records and resume after a crash."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from archon.compiler import compile_source
from archon.eval import (
    ChunkReport,
    EvalConfig,
    EvalResult,
    MetricOptions,
    RecordsError,
    Update,
    evaluate,
    evaluate_chunks,
    evaluate_sync,
    load_dataset,
    read_records,
)
from archon.eval.summary import declared_filters
from archon.ir import Budget
from archon.layers.registry import Registry
from archon.runtime import Limits, ModelCallError, PipelineNotConcrete
from archon.runtime.clients.fake import ScriptedClient, last_user, prompt_text
from archon.runtime.context import derive_seed
from archon.values import CompletionRequest

from .conftest import pipe, qa_dataset, sampled, single

ITEM = re.compile(r"q(\d+):")


def item_of(request: CompletionRequest) -> int:
    found = ITEM.search(prompt_text(request))
    assert found is not None
    return int(found.group(1))


def even_right(request: CompletionRequest) -> str:
    """Answers item i correctly (2i) when i is even, wrongly otherwise."""
    i = item_of(request)
    return f"The answer is {2 * i}." if i % 2 == 0 else "I am not sure, maybe 7777."


def test_known_score_and_cost(tmp_path: Path, limits: Limits) -> None:
    client = ScriptedClient(even_right, latency_s=0.01)
    records = tmp_path / "items.jsonl"
    updates: list[Update] = []
    result = evaluate_sync(
        single(),
        qa_dataset(10),
        client=client,
        limits=limits,
        concurrency=4,
        records_path=records,
        progress=updates.append,
    )
    s = result.summary
    assert (s.n, s.errors, s.accuracy, s.score) == (10, 0, 0.5, 0.5)
    assert result.complete and result.stopped is None and result.metric == "exact_match"
    assert s.cost.calls == 10 and s.cost.calls_per_item == 1.0
    assert s.cost.prompt_tokens > 0 and s.cost.completion_tokens > 0 and s.cost.seconds > 0
    assert 1 < client.max_in_flight <= 4  # items really are in flight together
    assert [u.done for u in updates] == list(range(1, 11))
    on_disk, _ = read_records(records)
    assert sorted(r.id for r in on_disk) == sorted(f"q{i}" for i in range(10))
    by_id = {r.id: r for r in on_disk}
    assert by_id["q4"].correct and by_id["q4"].answer == "The answer is 8."
    assert by_id["q3"].correct is False and by_id["q3"].usage.calls == 1
    assert all(r.fingerprint == single().fingerprint() for r in on_disk)


def counted(correct_per_item: dict[int, set[int]]) -> ScriptedClient:
    """Sample ``s`` of item ``i`` is right when ``s in correct_per_item[i]`` (by seed)."""
    seeds = {derive_seed(0, s): s for s in range(16)}

    def reply(request: CompletionRequest) -> str:
        i = item_of(request)
        sample = seeds[request.seed or 0]
        return str(2 * i) if sample in correct_per_item[i] else f"no idea ({chr(97 + sample)})"

    return ScriptedClient(reply)


def test_pass_at_k_and_coverage_from_candidates(limits: Limits) -> None:
    correct = {i: set(range(i % 6)) for i in range(12)}  # 0..5 of 5 samples right
    result = evaluate_sync(sampled(5), qa_dataset(12), client=counted(correct), limits=limits)
    s = result.summary
    counts = [len(correct[i]) for i in range(12)]
    assert s.pass_at_k(1) == pytest.approx(sum(c / 5 for c in counts) / 12)
    assert s.pass_at_k(5) == pytest.approx(sum(c > 0 for c in counts) / 12)
    assert s.pass_at_k(10) is None  # fewer than 10 samples
    assert s.coverage == pytest.approx(10 / 12)
    assert s.candidates_per_item == 5 and s.cost.calls == 60
    assert s.verifier_fpr is None


def test_verifier_false_positive_rate(registry: Registry, limits: Limits) -> None:
    p = pipe(
        "generate(models = [m], samples = 4, temperature = 0.7, max_tokens = 64)\n"
        "keep_first(keep = 2)",
        registry,
    )
    correct = {0: {0}, 1: {2, 3}, 2: {0}, 3: {2, 3}}
    result = evaluate_sync(
        p,
        qa_dataset(4),
        client=counted(correct),
        limits=limits,
        registry=registry,  # keep_first declares is_filter: no filter_kinds needed
    )
    s = result.summary
    assert (s.verifier_kept, s.verifier_wrong) == (8, 6)
    assert s.verifier_fpr == pytest.approx(0.75)
    assert s.accuracy == 0.5  # the answer is the filter's first candidate: sample 0
    assert s.coverage == 1.0 and s.pass_at_k(1) == pytest.approx((1 / 4 + 2 / 4) / 2)
    record = next(r for r in result.records if r.id == "q1")
    assert [(c.node, c.source) for c in record.candidates].count(("generate_1", True)) == 4
    assert [c.correct for c in record.candidates if c.node == "keep_first_1"] == [False, False]


def test_filter_kinds_come_from_the_registry(registry: Registry) -> None:
    assert {"verify", "unit_test_evaluate"} <= set(declared_filters())
    assert "generate" not in declared_filters() and "keep_first" not in declared_filters()
    assert "keep_first" in declared_filters(registry)
    p = pipe(
        "generate(models = [m], samples = 4, temperature = 0.7, max_tokens = 64)\n"
        "keep_first(keep = 2)",
        registry,
    )
    correct = {0: {0}, 1: {2, 3}}
    config = EvalConfig.of(client=counted(correct), registry=registry, filter_kinds=())
    assert evaluate_sync(p, qa_dataset(2), config).summary.verifier_kept == 0


def test_roles_on_two_models_are_reported_apart(limits: Limits) -> None:
    p = compile_source(
        'models { small = "fake/small"  big = "fake/big" }\n'
        "pipeline p {\n"
        "  generate(models = [small], samples = 3, temperature = 0.7, max_tokens = 64)\n"
        "  rank(model = big, top_k = 1)\n"
        "}\n"
    )
    result = evaluate_sync(p, qa_dataset(4), EvalConfig.of(client=ScriptedClient(even_right)))
    by_model = {u.model: u for u in result.summary.cost.by_model}
    assert set(by_model) == {"fake/small", "fake/big"}
    assert by_model["fake/small"].calls == 12
    big_calls = by_model["fake/big"].calls
    assert big_calls >= 4 and big_calls + 12 == result.summary.cost.calls
    assert by_model["fake/big"].prompt_tokens > 0
    record = result.records[0]
    assert {u.model for u in record.by_model} == {"fake/small", "fake/big"}
    report = result.report()["cost"]["by_model"]
    assert report["fake/small"]["calls_per_item"] == 3.0


def test_failed_items_count_as_wrong_and_do_not_stop_the_run(limits: Limits) -> None:
    def broken(request: CompletionRequest) -> bool:
        return item_of(request) == 3

    def failure(request: CompletionRequest) -> BaseException:
        return ModelCallError("bad request", model=request.model, retryable=False, status=400)

    client = ScriptedClient(even_right, fail_when=broken, failure=failure)
    result = evaluate_sync(single(), qa_dataset(6), client=client, limits=limits)
    s = result.summary
    assert (s.n, s.errors) == (6, 1) and s.accuracy == pytest.approx(3 / 6)
    failed = next(r for r in result.records if r.id == "q3")
    assert failed.error and failed.error_type == "NodeFailed" and failed.score == 0.0


def test_per_query_budget_is_a_failed_item_not_a_crash(limits: Limits) -> None:
    # (The compiler rejects this budget statically; set it on the IR to hit it at run time.)
    p = sampled(3).model_copy(update={"budget": Budget(calls=1)})
    result = evaluate_sync(p, qa_dataset(3), client=ScriptedClient(even_right), limits=limits)
    assert result.summary.errors == 3 and result.stopped is None
    assert {r.error_type for r in result.records} == {"BudgetExceeded"}


def test_run_budget_stops_cleanly_and_resume_finishes(tmp_path: Path, limits: Limits) -> None:
    records = tmp_path / "items.jsonl"
    first = evaluate_sync(
        single(),
        qa_dataset(10),
        client=ScriptedClient(even_right),
        limits=limits,
        concurrency=1,
        budget=Budget(calls=4),
        records_path=records,
    )
    assert first.stopped is not None and first.stopped.limit == "calls"
    assert first.stopped.scope == "run" and "budget" in str(first.stopped)
    assert first.summary.n == 4 and not first.complete
    assert len(read_records(records)[0]) == 4
    client = ScriptedClient(even_right)
    second = evaluate_sync(
        single(),
        qa_dataset(10),
        client=client,
        limits=limits,
        records_path=records,
        resume=True,
    )
    assert second.complete and second.resumed == 4 and second.summary.n == 10
    assert client.calls == 6
    assert second.summary.accuracy == 0.5


class Crash(BaseException):
    """Simulates the process dying (not an error the runtime turns into a failed item)."""


def test_resume_after_a_crash_redoes_nothing(tmp_path: Path, limits: Limits) -> None:
    records = tmp_path / "items.jsonl"
    k = 4

    def dies_after_k(request: CompletionRequest) -> str:
        if len(dying.requests) > k:
            raise Crash()
        return even_right(request)

    dying = ScriptedClient(dies_after_k)
    with pytest.raises(Crash):
        evaluate_sync(
            single(),
            qa_dataset(10),
            client=dying,
            limits=limits,
            concurrency=1,
            records_path=records,
        )
    done = [r.id for r in read_records(records)[0]]
    assert len(done) == k
    with records.open("a") as handle:  # the crash also cut a record in half
        handle.write('{"id": "q9", "answers": ["The ans')
    fresh = ScriptedClient(even_right)
    result = evaluate_sync(
        single(), qa_dataset(10), client=fresh, limits=limits, records_path=records, resume=True
    )
    redone = {f"q{item_of(r)}" for r in fresh.requests}
    assert redone.isdisjoint(done) and len(redone) == 10 - k
    assert result.summary.n == 10 and result.summary.accuracy == 0.5 and result.resumed == k
    lines = records.read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["id"] for line in lines)


def test_resume_refuses_records_of_another_pipeline(tmp_path: Path, limits: Limits) -> None:
    records = tmp_path / "items.jsonl"
    evaluate_sync(
        single(),
        qa_dataset(2),
        client=ScriptedClient(even_right),
        limits=limits,
        records_path=records,
    )
    with pytest.raises(RecordsError, match="different pipeline"):
        evaluate_sync(
            sampled(2),
            qa_dataset(2),
            client=ScriptedClient(even_right),
            limits=limits,
            records_path=records,
            resume=True,
        )


def test_corrupt_record_in_the_middle_is_an_error(tmp_path: Path) -> None:
    records = tmp_path / "items.jsonl"
    records.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(RecordsError, match="line 2 is not a record"):
        read_records(records)


def test_chunks_report_running_scores(limits: Limits) -> None:
    async def collect(n: int, size: int) -> list[ChunkReport]:
        return [
            r
            async for r in evaluate_chunks(
                single(),
                qa_dataset(n),
                EvalConfig.of(client=ScriptedClient(even_right), limits=limits, concurrency=1),
                chunk_size=size,
            )
        ]

    reports = asyncio.run(collect(10, 4))
    assert [(r.chunk, r.step, r.final) for r in reports] == [
        (1, 4, False),
        (2, 8, False),
        (3, 10, True),
    ]
    assert reports[0].summary.accuracy == 0.5 and reports[-1].summary.n == 10
    # every item's record comes with exactly one report
    assert sorted(r.id for report in reports for r in report.records) == sorted(
        f"q{i}" for i in range(10)
    )
    exact = asyncio.run(collect(8, 4))
    assert [(r.step, r.final) for r in exact] == [(4, False), (8, True)]


def test_breaking_out_of_chunks_stops_the_work(limits: Limits) -> None:
    client = ScriptedClient(even_right, latency_s=0.005)

    async def first_chunk() -> ChunkReport:
        config = EvalConfig.of(client=client, limits=limits, concurrency=2)
        async for report in evaluate_chunks(single(), qa_dataset(40), config, chunk_size=5):
            return report
        raise AssertionError("no report")

    report = asyncio.run(first_chunk())
    assert report.step == 5 and client.calls < 40


def test_multi_turn_items_use_the_conversation_and_a_judge(limits: Limits) -> None:
    dataset = load_dataset("mt_bench").head(2)

    def reply(request: CompletionRequest) -> str:
        if "Rate the quality" in prompt_text(request):
            return "Fine. Rating: [[7]]"
        return f"answer to: {last_user(request)[:20]}"

    client = ScriptedClient(reply)
    result = evaluate_sync(
        single(),
        dataset,
        client=client,
        limits=limits,
        metric_options=MetricOptions(judge_model="judge"),
    )
    s = result.summary
    assert s.score == 7.0 and s.accuracy is None and s.n == 2
    assert s.cost.calls == 4 and s.cost.judge.calls == 4
    assert all(len(r.answers) == 2 for r in result.records)
    second_turns = [r for r in client.requests if r.model == "fake/m" and len(r.messages) > 2]
    assert len(second_turns) == 2
    assert all(any(m.role == "assistant" for m in r.messages) for r in second_turns)


def test_unassigned_holes_fail_before_any_call(limits: Limits) -> None:
    template = pipe("generate(models = [m], samples = int(1, 3))")
    client = ScriptedClient()
    with pytest.raises(PipelineNotConcrete):
        evaluate_sync(template, qa_dataset(2), client=client, limits=limits)
    assert client.calls == 0


def test_result_is_frozen_and_reports_json(limits: Limits) -> None:
    config = EvalConfig.of(client=ScriptedClient(even_right), limits=limits)
    result = asyncio.run(evaluate(single(), qa_dataset(2), config))
    assert isinstance(result, EvalResult)
    with pytest.raises(ValidationError):
        result.total = 5  # type: ignore[misc]
    report = json.loads(json.dumps(result.report()))
    assert report["accuracy"] == 0.5 and report["cost"]["per_item"]["calls"] == 1.0
