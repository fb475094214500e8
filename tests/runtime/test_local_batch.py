"""The embedded engine's batching logic, without a model.

``FakeBackend`` stands in for a llama.cpp context and checks what llama.cpp would reject: every
row extends its sequence at the next position, copies and removals keep each sequence a
contiguous run of positions, and the distinct cells in use never exceed the cache. Its "model"
is a hash of a sequence's whole token history, so a wrongly shared prefix changes the output.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.local.batch import (
    DecodeError,
    Job,
    Outcome,
    Row,
    Sampling,
    Scheduler,
    rows_per_step,
)
from archon.runtime.clients.local.kv import (
    KvBook,
    Slots,
    SlotState,
    StopScanner,
    common_prefix,
)
from archon.runtime.clients.local.thread import Engine

EOG = 0
VOCAB = 50


class FakeBackend:
    """A deterministic stand-in for a unified-KV llama.cpp context."""

    def __init__(
        self, n_slots: int = 4, n_cells: int = 256, n_batch: int = 64, eog: bool = False
    ) -> None:
        self.eog = eog
        self.n_slots = n_slots
        self.n_cells = n_cells
        self.n_batch = n_batch
        self.kv: list[list[tuple[int, int]]] = [[] for _ in range(n_slots)]  # (token, cell)
        self.refs: dict[int, int] = {}
        self.next_cell = 0
        self.batches: list[list[Row]] = []
        self.fail_next: DecodeError | None = None
        self.samplers_open = 0
        self._last: list[Row] = []
        self._history: list[tuple[int, ...]] = []

    # what llama.cpp would reject
    def decode(self, rows: Sequence[Row]) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if len(self.refs) + len(rows) > self.n_cells:
            raise DecodeError("full", no_space=True)
        history = []
        for row in rows:
            seq = self.kv[row.slot]
            assert row.pos == len(seq), f"slot {row.slot}: pos {row.pos}, holds {len(seq)}"
            seq.append((row.token, self.next_cell))
            self.refs[self.next_cell] = 1
            self.next_cell += 1
            history.append(tuple(t for t, _ in seq))
        self.batches.append(list(rows))
        self._last = list(rows)
        self._history = history

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        assert len(self.kv[dst]) == p0 and p1 <= len(self.kv[src])
        for entry in self.kv[src][p0:p1]:
            self.kv[dst].append(entry)
            self.refs[entry[1]] += 1

    def seq_rm(self, slot: int, p0: int) -> None:
        for _, cell in self.kv[slot][p0:]:
            self.refs[cell] -= 1
            if not self.refs[cell]:
                del self.refs[cell]
        del self.kv[slot][p0:]

    def clear(self) -> None:
        for slot in range(self.n_slots):
            self.seq_rm(slot, 0)

    def open_sampler(self, sampling: Sampling) -> Any:
        self.samplers_open += 1
        return sampling

    def close_sampler(self, sampler: Any) -> None:
        self.samplers_open -= 1

    def _hash(self, row: int, salt: int = 0) -> int:
        assert self._last[row].logits, "logits of a row that did not ask for them"
        text = f"{self._history[row]}:{salt}".encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")

    def sample(self, sampler: Any, row: int) -> int:
        return self._hash(row, sampler.seed) % VOCAB

    def logprob(self, row: int, token: int) -> float:
        return -((self._hash(row) + token) % 97) / 10.0

    def is_eog(self, token: int) -> bool:
        return self.eog and token == EOG

    def piece(self, token: int) -> bytes:
        return bytes([ord("a") + token % 26])


def job(prompt: Sequence[int], *, max_new: int = 8, seed: int = 1, **kw: Any) -> Job:
    sampling = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, seed=seed)
    return Job(model="local/fake", tokens=tuple(prompt), max_new=max_new, sampling=sampling, **kw)


def run_all(scheduler: Scheduler, jobs: Sequence[Job]) -> list[Outcome | BaseException]:
    results: list[Outcome | BaseException | None] = [None] * len(jobs)
    for i, j in enumerate(jobs):
        scheduler.submit(j, lambda value, i=i: results.__setitem__(i, value))
    for _ in range(1000):
        if not scheduler.busy:
            break
        scheduler.step()
        assert scheduler.book.used <= scheduler.backend.n_cells
    assert not scheduler.busy
    return [r for r in results if r is not None]


def outcome(value: Outcome | BaseException) -> Outcome:
    assert isinstance(value, Outcome), value
    return value


PROMPT = list(range(1, 41))


# -- pure helpers ---------------------------------------------------------------------------


def test_common_prefix() -> None:
    long = list(range(300))
    assert common_prefix(long, [*long[:200], -1]) == 200
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5], [6]) == 0


def test_kv_book_shares_cells_and_frees_them_with_the_last_holder() -> None:
    book = KvBook(3)
    book.append(0, [1, 2, 3, 4])
    book.copy(0, 1, 3)
    assert book.used == 4 and list(book.tokens(1)) == [1, 2, 3]
    book.append(1, [9])
    assert book.used == 5
    assert book.exclusive(0) == 1 and book.exclusive(1) == 1
    book.clear(0)
    assert book.used == 4  # the shared prefix stays with slot 1
    book.truncate(1, 1)
    assert book.used == 1 and list(book.tokens(1)) == [1]
    with pytest.raises(ValueError, match="prefix"):
        book.append(2, [7])
        book.copy(1, 2, 1)


def test_slots_lru_order() -> None:
    slots = Slots(3)
    slots.set(2, SlotState.CACHED)
    slots.set(0, SlotState.CACHED)
    slots.set(1, SlotState.LIVE)
    assert slots.with_state(SlotState.CACHED) == [2, 0]
    slots.set(2, SlotState.CACHED)  # used again: now the most recent
    assert slots.with_state(SlotState.CACHED) == [0, 2]
    assert slots.first_free() is None


def test_stop_scanner_cuts_at_a_stop_split_over_tokens() -> None:
    scanner = StopScanner([b"END"])
    assert not scanner.feed(b"abc E")
    assert not scanner.feed(b"N")
    assert scanner.feed(b"Dxyz")
    assert scanner.result() == "abc "


def test_stop_scanner_waits_for_a_complete_utf8_character() -> None:
    euro = "€".encode()  # 3 bytes
    scanner = StopScanner(["€".encode()])
    assert not scanner.feed(euro[:1])
    assert not scanner.feed(euro[1:2])  # incomplete: not checked yet
    assert scanner.feed(euro[2:])
    assert scanner.result() == ""
    plain = StopScanner([])
    plain.feed("é".encode()[:1])
    assert plain.result() == ""  # an incomplete character is dropped, not an error


# -- scheduling -------------------------------------------------------------------------------


def test_samples_of_one_prompt_evaluate_it_once_and_match_solo_runs() -> None:
    jobs = [job(PROMPT, seed=s) for s in range(5)]
    backend = FakeBackend(n_slots=8)
    batched = [outcome(r) for r in run_all(Scheduler(backend), jobs)]
    solo = [outcome(run_all(Scheduler(FakeBackend()), [j])[0]) for j in jobs]
    assert [r.text for r in batched] == [r.text for r in solo]
    assert len({r.text for r in batched}) > 1  # seeds differ
    prompt_rows = sum(1 for b in backend.batches for r in b if r.pos < len(PROMPT))
    assert prompt_rows == len(PROMPT) + 4  # each follower evaluates only the last token
    assert all(r.prompt_tokens == len(PROMPT) for r in batched)  # usage counts it all
    assert max(len(b) for b in backend.batches[1:]) >= 5  # decoded together
    assert backend.samplers_open == 0


def test_continuous_batching_new_requests_join_and_finished_ones_leave() -> None:
    backend = FakeBackend(n_slots=2)
    scheduler = Scheduler(backend)
    done: list[Outcome | BaseException] = []
    scheduler.submit(job([1, 2, 3], max_new=3), done.append)
    scheduler.step()  # prompt of the first
    scheduler.submit(job([7, 8, 9], max_new=10), done.append)
    scheduler.submit(job([4, 5, 6], max_new=2), done.append)  # waits for a slot
    scheduler.step()
    assert len(backend.batches[-1]) == 1 + 3  # one generated token + the new prompt
    while scheduler.busy:
        scheduler.step()
    assert [outcome(d).completion_tokens for d in done] == [3, 2, 10]
    assert scheduler.slots.with_state(SlotState.LIVE) == []


def test_prefix_cache_serves_a_later_identical_prompt() -> None:
    backend = FakeBackend()
    scheduler = Scheduler(backend)
    first = outcome(run_all(scheduler, [job(PROMPT)])[0])
    again = outcome(run_all(scheduler, [job(PROMPT)])[0])
    assert first.text == again.text
    assert again.evaluated == again.completion_tokens  # 1 prompt token + (n - 1) fed tokens
    uncached = Scheduler(FakeBackend(), prefix_cache=False)
    run_all(uncached, [job(PROMPT)])
    assert outcome(run_all(uncached, [job(PROMPT)])[0]).evaluated > len(PROMPT)


def test_lru_cached_slot_is_reused_and_its_cells_removed() -> None:
    backend = FakeBackend(n_slots=2)
    scheduler = Scheduler(backend)
    run_all(scheduler, [job([1, 2, 3, 4])])
    run_all(scheduler, [job([5, 6, 7, 8])])
    assert scheduler.slots.with_state(SlotState.CACHED) == [0, 1]
    result = outcome(run_all(scheduler, [job([9, 9, 9])])[0])
    assert result.evaluated >= 3
    assert list(scheduler.book.tokens(0))[:3] == [9, 9, 9]  # slot 0 (LRU) was cleared first
    assert list(scheduler.book.tokens(1))[:4] == [5, 6, 7, 8]
    assert [t for t, _ in backend.kv[0]][:3] == [9, 9, 9]


def test_admission_waits_for_kv_cells_and_never_overflows() -> None:
    backend = FakeBackend(n_slots=4, n_cells=60)
    jobs = [job([10 + i] * 20, max_new=15, seed=i) for i in range(3)]  # 34 cells each
    results = [outcome(r) for r in run_all(Scheduler(backend), jobs)]
    assert len(results) == 3
    assert max(len(b) for b in backend.batches) <= 20 + 1  # never two prompts' worth at once


def test_stop_strings_eog_and_length() -> None:
    base = job(PROMPT, max_new=30, seed=3)
    text = outcome(run_all(Scheduler(FakeBackend()), [base])[0]).text
    stop = text[3:5].encode()
    cut = outcome(
        run_all(Scheduler(FakeBackend()), [job(PROMPT, max_new=30, seed=3, stops=(stop,))])[0]
    )
    assert cut.finish_reason == "stop" and cut.text == text[: text.index(stop.decode())]
    short = outcome(run_all(Scheduler(FakeBackend()), [job(PROMPT, max_new=2, seed=3)])[0])
    assert short.finish_reason == "length" and short.completion_tokens == 2


def test_generation_ends_at_eog_without_counting_it() -> None:
    results = [
        outcome(run_all(Scheduler(FakeBackend(eog=True)), [job([1], max_new=60, seed=s)])[0])
        for s in range(100)
    ]
    stopped = [r for r in results if r.finish_reason == "stop"]
    assert stopped, "some seed should hit the EOG token"
    assert all(len(r.text) == r.completion_tokens for r in stopped)


def test_score_only_evaluates_the_scored_positions_itself() -> None:
    prompt = list(range(1, 31))
    backend = FakeBackend()
    scheduler = Scheduler(backend)
    run_all(scheduler, [job(prompt)])  # caches the whole prompt
    scored = outcome(run_all(scheduler, [job(prompt, max_new=0, score_from=25)])[0])
    assert scored.text == "" and scored.completion_tokens == 0
    assert scored.evaluated == len(prompt) - 24  # positions 24.. (24 predicts token 25)
    fresh = outcome(run_all(Scheduler(FakeBackend()), [job(prompt, max_new=0, score_from=25)])[0])
    assert fresh.logprob == pytest.approx(scored.logprob)
    assert fresh.logprob is not None and fresh.logprob < 0


def test_logprobs_are_the_mean_over_generated_tokens() -> None:
    result = outcome(run_all(Scheduler(FakeBackend()), [job(PROMPT, logprobs=True)])[0])
    assert result.logprob is not None and result.logprob <= 0
    plain = outcome(run_all(Scheduler(FakeBackend()), [job(PROMPT)])[0])
    assert plain.logprob is None and plain.text == result.text


def test_a_failed_decode_fails_its_requests_and_the_engine_goes_on() -> None:
    backend = FakeBackend()
    scheduler = Scheduler(backend)
    backend.fail_next = DecodeError("boom")
    failed = run_all(scheduler, [job(PROMPT), job([3, 3])])
    assert all(isinstance(f, ModelCallError) and not f.retryable for f in failed)
    assert scheduler.book.used == 0 and all(not kv for kv in backend.kv)
    assert isinstance(run_all(scheduler, [job(PROMPT)])[0], Outcome)
    assert backend.samplers_open == 0


def test_a_full_cache_drops_cached_prefixes_and_retries() -> None:
    backend = FakeBackend()
    scheduler = Scheduler(backend)
    run_all(scheduler, [job([1, 2, 3])])
    backend.fail_next = DecodeError("full", no_space=True)
    assert isinstance(run_all(scheduler, [job([4, 5, 6])])[0], Outcome)
    assert list(scheduler.book.tokens(0)) == []  # the cached prefix was dropped


def test_cancel_frees_the_slot_and_keeps_its_kv_as_a_prefix() -> None:
    backend = FakeBackend(n_slots=2)
    scheduler = Scheduler(backend)
    got: list[Outcome | BaseException] = []
    victim = scheduler.submit(job(PROMPT, max_new=50), got.append)
    other = scheduler.submit(job([5, 6], max_new=50), got.append)
    scheduler.step()
    scheduler.step()
    scheduler.cancel(victim)
    assert scheduler.slots.states[victim.slot] is SlotState.CACHED
    assert backend.samplers_open == 1
    while scheduler.busy:
        scheduler.step()
    assert len(got) == 1 and outcome(got[0]).completion_tokens == 50
    pending = scheduler.submit(job([1]), got.append)
    scheduler.cancel(pending)
    assert not scheduler.busy and other not in scheduler.live


# -- the engine thread --------------------------------------------------------------------------


class Slowish(FakeBackend):
    def decode(self, rows: Sequence[Row]) -> None:
        time.sleep(0.002)
        super().decode(rows)


def test_engine_serves_coroutines_and_cancellation_frees_the_slot() -> None:
    backend = Slowish(n_slots=2)
    scheduler = Scheduler(backend)
    engine = Engine(scheduler)

    async def main() -> list[Outcome]:
        slow = asyncio.create_task(engine.run(job(PROMPT, max_new=200)))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return list(await asyncio.gather(*(engine.run(job(PROMPT, seed=s)) for s in range(3))))

    try:
        results = asyncio.run(main())
    finally:
        engine.close()
    assert len(results) == 3 and all(r.completion_tokens > 0 for r in results)
    assert max(len(b) for b in backend.batches) < 200 // 2  # the cancelled one stopped early
    assert sum(len(b) for b in backend.batches) < len(PROMPT) + 200 + 3 * 9
    assert backend.samplers_open == 0


def test_a_request_that_can_never_fit_fails_at_once() -> None:
    scheduler = Scheduler(FakeBackend(n_cells=30))
    (result,) = run_all(scheduler, [job(PROMPT, max_new=5)])
    assert isinstance(result, ModelCallError) and "KV cells" in str(result)


class Exploding(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.explode = True

    def sample(self, sampler: Any, row: int) -> int:
        if self.explode:
            self.explode = False
            raise RuntimeError("native failure")
        return super().sample(sampler, row)


def test_engine_turns_a_crash_into_model_call_errors_and_keeps_serving() -> None:
    engine = Engine(Scheduler(Exploding()))

    async def main() -> tuple[BaseException | Outcome, Outcome]:
        first = await asyncio.gather(engine.run(job(PROMPT)), return_exceptions=True)
        return first[0], await engine.run(job(PROMPT))

    try:
        failed, ok = asyncio.run(main())
    finally:
        engine.close()
    assert isinstance(failed, ModelCallError) and "native failure" in str(failed)
    assert ok.completion_tokens > 0


def test_closing_the_engine_fails_waiting_requests() -> None:
    gate = threading.Event()

    class Slow(FakeBackend):
        def decode(self, rows: Sequence[Row]) -> None:
            gate.wait(5)
            super().decode(rows)

    engine = Engine(Scheduler(Slow()))

    async def main() -> BaseException | Outcome:
        task = asyncio.ensure_future(engine.run(job(PROMPT, max_new=100)))
        await asyncio.sleep(0.05)
        closer = asyncio.get_running_loop().run_in_executor(None, engine.close)
        gate.set()
        await closer
        done = await asyncio.gather(task, return_exceptions=True)
        return done[0]

    result = asyncio.run(main())
    assert isinstance(result, ModelCallError) and "closed" in str(result)

    async def after() -> None:
        await engine.run(job(PROMPT))

    with pytest.raises(ModelCallError, match="closed"):
        asyncio.run(after())


def test_rows_per_step_picks_the_fastest_count_per_token() -> None:
    # One row uses a fast vector kernel; 2-4 rows cost one tile pass, 5-8 two.
    seconds = [1.0, 2.2, 2.2, 2.2, 4.4, 4.4, 4.4, 4.4]
    assert rows_per_step(seconds) == [0, 1, 1, 3, 4, 4, 4, 4, 8]
    assert rows_per_step([1.0, 1.5, 2.0]) == [0, 1, 2, 3]  # linear-ish: all of them


def test_steps_advance_the_sequences_that_waited_longest() -> None:
    backend = FakeBackend(n_slots=5)
    scheduler = Scheduler(backend, step_rows=[0, 1, 2, 3, 4, 4])
    results = run_all(scheduler, [job([i + 1] * 3, max_new=12, seed=i) for i in range(5)])
    solo = [
        outcome(run_all(Scheduler(FakeBackend()), [job([i + 1] * 3, max_new=12, seed=i)])[0])
        for i in range(5)
    ]
    assert [outcome(r).text for r in results] == [r.text for r in solo]
    generation = [b for b in backend.batches if all(r.pos >= 3 for r in b)]
    assert max(len(b) for b in generation) == 4  # never all five at once
    assert all(outcome(r).completion_tokens == 12 for r in results)  # and nobody starves
