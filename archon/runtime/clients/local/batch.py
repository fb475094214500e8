"""Continuous batching for the embedded engine: the scheduler, with no llama.cpp in it.

One :class:`Scheduler` drives one llama.cpp context (through the small :class:`Backend`
protocol that :mod:`archon.runtime.clients.local.engine` implements) and serves every
request for that model:

* each request is a sequence in the context (a *slot*, up to ``n_seq_max``); each
  :meth:`Scheduler.step` is one ``llama_decode`` of one batch that advances every generating
  sequence by one token and evaluates a chunk of the prompts still being read; new requests
  join at the next step and finished ones free their slot;
* a prompt that shares a prefix with what another slot already holds (a live sequence, or a
  finished one whose KV is kept as a prefix cache) copies that prefix's cells instead of
  evaluating it; a request whose prompt shares a prefix with one still being evaluated waits
  a step or two and then copies it, so the samples of one node evaluate their prompt once;
* admission reserves the KV cells a request may still need (prompt + ``max_new``), evicting
  cached slots, least recently used first, so a decode never runs out of cells.

:class:`~archon.runtime.clients.local.thread.Engine` runs a scheduler in its own thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.code_stop import FenceTracker
from archon.runtime.clients.local.kv import KvBook, Slots, SlotState, StopScanner, common_prefix

logger = logging.getLogger(__name__)

WAIT_FOR_LEADER = 16
"""A prompt waits for another one still being evaluated when it would share this many more
tokens with it (evaluating them itself would cost the same compute twice)."""
SCORE_ROWS = 64
"""Logit rows one decode returns for ``score_only`` prompts (bounds the output buffer)."""


@dataclass(frozen=True)
class Sampling:
    """One sequence's sampler settings (already resolved to llama-cpp-python's defaults)."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    seed: int


@dataclass(frozen=True)
class Job:
    """What the scheduler needs of one request, prepared from a ``CompletionRequest``.

    Attributes:
        model: the model string, for error messages.
        tokens: the prompt (chat template, then the assistant prefix if any).
        max_new: tokens to generate at most (already clamped to the context window).
        stops: stop strings, UTF-8 encoded.
        sampling: the sampler settings.
        logprobs: report the mean log-probability of the generated tokens.
        score_from: ``score_only``: index of the first scored token (nothing is generated).
        stop_after_code: end the answer after its first complete fenced code block.
        prefix: the assistant prefix the answer continues, UTF-8 encoded (the code block
            may have been opened there).
    """

    model: str
    tokens: tuple[int, ...]
    max_new: int
    stops: tuple[bytes, ...] = ()
    sampling: Sampling = Sampling(0.0, 1.0, 0, 0.0, 0)
    logprobs: bool = False
    score_from: int | None = None
    stop_after_code: bool = False
    prefix: bytes = b""

    def scanner(self) -> StopScanner:
        """A fresh scanner of this job's generated text: its stops and code block end."""
        fences = FenceTracker(self.prefix) if self.stop_after_code else None
        return StopScanner(self.stops, fences)

    @property
    def share_cap(self) -> int:
        """Prompt positions that may come from another slot: the rest must be evaluated here
        (at least the last token, for its logits; for scoring, every scored position)."""
        if self.score_from is not None:
            return max(0, self.score_from - 1)
        return len(self.tokens) - 1

    @property
    def kv_target(self) -> int:
        """The most positions this sequence will hold (the last sampled token is never fed)."""
        return len(self.tokens) + max(0, self.max_new - 1)


@dataclass(frozen=True)
class Outcome:
    """The result of one job."""

    text: str
    logprob: float | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    evaluated: int
    """Prompt and generated tokens this sequence evaluated itself (the rest was shared)."""


class Row(NamedTuple):
    """One token of a batch: ``token`` at position ``pos`` of sequence ``slot``."""

    token: int
    pos: int
    slot: int
    logits: bool


class DecodeError(Exception):
    """``llama_decode`` failed; ``no_space`` when the KV cache had no room for the batch."""

    def __init__(self, message: str, *, no_space: bool = False) -> None:
        super().__init__(message)
        self.no_space = no_space


class Backend(Protocol):
    """The native context the scheduler drives (see ``local_engine.LlamaBackend``)."""

    n_slots: int
    n_cells: int
    n_batch: int

    def decode(self, rows: Sequence[Row]) -> None:
        """Evaluate one batch; raise :class:`DecodeError` on failure."""
        ...

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Share ``src``'s positions ``[p0, p1)`` with ``dst``."""
        ...

    def seq_rm(self, slot: int, p0: int) -> None:
        """Drop ``slot``'s positions from ``p0`` on."""
        ...

    def clear(self) -> None:
        """Drop every sequence's cells."""
        ...

    def open_sampler(self, sampling: Sampling) -> Any:
        """A fresh sampler chain."""
        ...

    def close_sampler(self, sampler: Any) -> None:
        """Free a sampler chain."""
        ...

    def sample(self, sampler: Any, row: int) -> int:
        """Sample (and accept) a token from the logits of batch row ``row``."""
        ...

    def logprob(self, row: int, token: int) -> float:
        """log P(token) under the logits of batch row ``row``."""
        ...

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation."""
        ...

    def piece(self, token: int) -> bytes:
        """The bytes of ``token`` (special tokens render as nothing)."""
        ...


Done = Callable[["Outcome | BaseException"], None]


def rows_per_step(seconds: Sequence[float], tolerance: float = 0.0) -> list[int]:
    """For each number n of generating sequences, how many to advance per decode.

    ``seconds[k - 1]`` is the measured time of one decode of ``k`` rows. CPU matmul kernels
    are not linear in the row count (ggml uses a vector kernel for one row and 4-column
    tiles for more), so advancing 4 of 5 sequences per step, in turn, can decode more tokens
    per second than advancing all 5. Larger counts win ties (within ``tolerance``).

    Example:
        >>> rows_per_step([1.0, 2.2, 2.2, 2.2, 3.3])
        [0, 1, 1, 3, 4, 4]
    """
    best = [0]
    for n in range(1, len(seconds) + 1):
        rates = [(k / seconds[k - 1], k) for k in range(1, n + 1)]
        top = max(rate for rate, _ in rates)
        best.append(max(k for rate, k in rates if rate >= top * (1 - tolerance)))
    return best


@dataclass(eq=False)
class _Seq:
    job: Job
    done: Done
    slot: int = -1
    sampler: Any = None
    tokens: list[int] = field(default_factory=list)
    next_token: int | None = None
    generated: int = 0
    evaluated: int = 0
    lp_sum: float = 0.0
    lp_count: int = 0
    turn: int = 0  # the step that last advanced this sequence
    scanner: StopScanner = field(default_factory=lambda: StopScanner(()))

    @property
    def prefilling(self) -> bool:
        return self.next_token is None


class Scheduler:
    """The batching state machine of one context (single-threaded: the engine thread)."""

    def __init__(
        self,
        backend: Backend,
        *,
        prefix_cache: bool = True,
        step_rows: Sequence[int] | None = None,
    ) -> None:
        self.backend = backend
        self.prefix_cache = prefix_cache
        # step_rows[n]: sequences to advance in a step where n generate (and no prompt is
        # read); see rows_per_step. Default: all of them.
        self.step_rows = list(step_rows or range(backend.n_slots + 1))
        self._clock = 0
        self.book = KvBook(backend.n_slots)
        self.slots = Slots(backend.n_slots)
        self.pending: deque[_Seq] = deque()
        self.live: list[_Seq] = []  # admission order

    # -- requests -------------------------------------------------------------------------

    def submit(self, job: Job, done: Done) -> _Seq:
        """Queue ``job``; ``done`` is called once with its :class:`Outcome` or an error."""
        seq = _Seq(job=job, done=done, tokens=list(job.tokens), scanner=job.scanner())
        if job.kv_target > self.backend.n_cells:  # could never be admitted
            done(
                ModelCallError(
                    f"{job.model}: {len(job.tokens)} prompt tokens + {job.max_new} to generate"
                    f" need more than the {self.backend.n_cells} KV cells of the context;"
                    " lower max_tokens or give the local client a larger n_ctx",
                    model=job.model,
                )
            )
            return seq
        self.pending.append(seq)
        return seq

    def cancel(self, seq: _Seq) -> None:
        """Stop ``seq`` (its caller is gone): free its slot, keep its KV as a prefix cache."""
        if seq in self.pending:
            self.pending.remove(seq)
        elif seq in self.live:
            self._release(seq)

    @property
    def busy(self) -> bool:
        """Whether a step has anything to do."""
        return bool(self.live or self.pending)

    def fail_all(self, error: BaseException) -> None:
        """Fail every queued and live request with ``error`` and forget all KV."""
        seqs = [*self.live, *self.pending]
        self.pending.clear()
        for seq in self.live:
            self._close_sampler(seq)
        self.live.clear()
        self.backend.clear()
        for slot in range(len(self.slots)):
            self.book.clear(slot)
            self.slots.set(slot, SlotState.FREE)
        for seq in seqs:
            seq.done(error)

    # -- one step ---------------------------------------------------------------------------

    def step(self) -> bool:
        """Admit what fits, decode one batch, and sample every sequence that got logits.

        Returns False when there was nothing to decode (the caller may wait for requests).
        """
        self._admit()
        rows, owners = self._build()
        if not rows:
            return False
        try:
            self._decode(rows)
        except DecodeError as e:
            self._fail_batch(owners, e)
            return True
        self._after_decode(rows, owners)
        return True

    def _decode(self, rows: list[Row]) -> None:
        try:
            self.backend.decode(rows)
        except DecodeError as e:
            cached = self.slots.with_state(SlotState.CACHED)
            if not (e.no_space and cached):
                raise
            logger.debug("KV cache full: dropping %d cached prefixes and retrying", len(cached))
            for slot in cached:
                self._evict(slot)
            self.backend.decode(rows)

    def _fail_batch(self, owners: list[_Seq | None], error: DecodeError) -> None:
        hit = {seq for seq in owners if seq is not None}
        for seq in hit:
            self.live.remove(seq)
            self._close_sampler(seq)
            self.backend.seq_rm(seq.slot, 0)
            self.book.clear(seq.slot)
            self.slots.set(seq.slot, SlotState.FREE)
            seq.done(
                ModelCallError(
                    f"{seq.job.model}: local decode failed: {error}",
                    model=seq.job.model,
                    retryable=error.no_space,
                )
            )

    # -- admission --------------------------------------------------------------------------

    def _reserved(self) -> int:
        return sum(max(0, s.job.kv_target - self.book.length(s.slot)) for s in self.live)

    def _best_donor(self, seq: _Seq) -> tuple[int, int]:
        """The slot holding the longest usable prefix of ``seq``'s prompt, and its length."""
        best, length = -1, 0
        cap = seq.job.share_cap
        for slot, state in enumerate(self.slots.states):
            if state is SlotState.FREE or slot == seq.slot:
                continue
            n = min(cap, common_prefix(seq.job.tokens, self.book.tokens(slot)))
            if n > length:
                best, length = slot, n
        return best, length

    def _admit(self) -> None:
        while self.pending:
            seq = self.pending[0]
            if not self._try_admit(seq):
                return
            self.pending.popleft()

    def _try_admit(self, seq: _Seq) -> bool:
        donor, shared = self._best_donor(seq)
        cached = self.slots.with_state(SlotState.CACHED)
        if self.slots.first_free() is None and not cached:
            return False
        # Make room for the cells this request may still allocate, dropping cached prefixes
        # (least recently used first, the donor last: losing it costs the shared prefix).
        victims = [s for s in cached if s != donor] + ([donor] if donor in cached else [])
        while self.book.used + self._reserved() + seq.job.kv_target - shared > (
            self.backend.n_cells
        ):
            if not victims:
                return False
            victim = victims.pop(0)
            self._evict(victim)
            if victim == donor:
                donor, shared = -1, 0
        slot = self.slots.first_free()
        if slot is None:  # take over a cached slot: the donor itself when it is one
            cached = self.slots.with_state(SlotState.CACHED)
            slot = donor if donor in cached else cached[0]
            keep = shared if slot == donor else 0
            self.backend.seq_rm(slot, keep)
            self.book.truncate(slot, keep)
        seq.slot = slot
        self.slots.set(slot, SlotState.LIVE)
        self.live.append(seq)
        if seq.job.score_from is None:
            seq.sampler = self.backend.open_sampler(seq.job.sampling)
        self._share(seq)
        return True

    def _evict(self, slot: int) -> None:
        self.backend.seq_rm(slot, 0)
        self.book.clear(slot)
        self.slots.set(slot, SlotState.FREE)

    def _share(self, seq: _Seq) -> None:
        """Copy the longest prefix another slot holds beyond what ``seq`` already has."""
        have = self.book.length(seq.slot)
        donor, shared = self._best_donor(seq)
        if donor >= 0 and shared > have:
            self.backend.seq_cp(donor, seq.slot, have, shared)
            self.book.copy(donor, seq.slot, shared)

    # -- building a batch ---------------------------------------------------------------------

    def _waits_for_leader(self, seq: _Seq, have: int) -> bool:
        """Whether an earlier prompt still being evaluated will soon hold more of ours."""
        for other in self.live:
            if other is seq:
                return False
            if not other.prefilling:
                continue
            n = min(seq.job.share_cap, common_prefix(seq.job.tokens, other.job.tokens))
            if n - have >= WAIT_FOR_LEADER and self.book.length(other.slot) < n:
                return True
        return False

    def _build(self) -> tuple[list[Row], list[_Seq | None]]:
        generating = [seq for seq in self.live if seq.next_token is not None]
        rows, owners = self._prompt_rows(self.backend.n_batch - len(generating))
        if not rows and generating:
            # Only generation this step: advance as many sequences as decode most tokens per
            # second on this machine, the ones that waited longest first.
            k = self.step_rows[min(len(generating), len(self.step_rows) - 1)]
            generating = sorted(generating, key=lambda seq: seq.turn)[:k]
        self._clock += 1
        for seq in generating:
            assert seq.next_token is not None
            seq.turn = self._clock
            rows.append(Row(seq.next_token, len(seq.tokens), seq.slot, True))
            owners.append(seq)
        return rows, owners

    def _prompt_rows(self, budget: int) -> tuple[list[Row], list[_Seq | None]]:
        rows: list[Row] = []
        owners: list[_Seq | None] = []  # owners[i]: the sequence row i belongs to
        outputs = SCORE_ROWS
        for seq in self.live:
            if not seq.prefilling or budget <= 0:
                continue
            self._share(seq)
            have = self.book.length(seq.slot)
            if self._waits_for_leader(seq, have):
                continue
            end = min(len(seq.tokens), have + budget)
            for pos in range(have, end):
                logits = self._wants_logits(seq.job, pos)
                if logits and seq.job.score_from is not None:
                    if outputs == 0:
                        break
                    outputs -= 1
                rows.append(Row(seq.tokens[pos], pos, seq.slot, logits))
                owners.append(seq)
                budget -= 1
        return rows, owners

    @staticmethod
    def _wants_logits(job: Job, pos: int) -> bool:
        last = len(job.tokens) - 1
        if job.score_from is not None:
            return job.score_from - 1 <= pos < last
        return pos == last

    # -- after a decode -------------------------------------------------------------------------

    def _after_decode(self, rows: list[Row], owners: list[_Seq | None]) -> None:
        fed: dict[int, list[int]] = {}
        for row in rows:
            fed.setdefault(row.slot, []).append(row.token)
        for seq in list(self.live):
            tokens = fed.get(seq.slot)
            if not tokens:
                continue
            self.book.append(seq.slot, tokens)
            seq.evaluated += len(tokens)
            if seq.next_token is not None:
                seq.next_token = None
                seq.tokens.append(tokens[-1])
        for i, (row, owner) in enumerate(zip(rows, owners, strict=True)):
            if row.logits and owner is not None and owner in self.live:
                self._use_logits(owner, row, i)
        for seq in list(self.live):
            job = seq.job
            if job.score_from is not None and self.book.length(seq.slot) == len(job.tokens):
                self._finish(seq, "stop")

    def _use_logits(self, seq: _Seq, row: Row, index: int) -> None:
        job = seq.job
        if job.score_from is not None:
            seq.lp_sum += self.backend.logprob(index, job.tokens[row.pos + 1])
            seq.lp_count += 1
            return
        token = self.backend.sample(seq.sampler, index)
        if self.backend.is_eog(token):
            self._finish(seq, "stop")
            return
        if job.logprobs:
            seq.lp_sum += self.backend.logprob(index, token)
            seq.lp_count += 1
        seq.generated += 1
        if seq.scanner.feed(self.backend.piece(token)):
            self._finish(seq, "stop")
        elif seq.generated >= job.max_new:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _finish(self, seq: _Seq, reason: str) -> None:
        job = seq.job
        logprob = None
        if (job.logprobs or job.score_from is not None) and seq.lp_count:
            logprob = seq.lp_sum / seq.lp_count
        outcome = Outcome(
            text="" if job.score_from is not None else seq.scanner.result(),
            logprob=logprob,
            finish_reason=reason,
            prompt_tokens=len(job.tokens),
            completion_tokens=seq.generated,
            evaluated=seq.evaluated,
        )
        self._release(seq)
        logger.debug(
            "%s: %d prompt tokens (%d shared), %d evaluated, %d generated (%s)",
            job.model,
            len(job.tokens),
            max(0, len(seq.tokens) - seq.evaluated),
            seq.evaluated,
            seq.generated,
            reason,
        )
        seq.done(outcome)

    def _release(self, seq: _Seq) -> None:
        self.live.remove(seq)
        self._close_sampler(seq)
        if self.prefix_cache:
            self.slots.set(seq.slot, SlotState.CACHED)
        else:
            self._evict(seq.slot)

    def _close_sampler(self, seq: _Seq) -> None:
        if seq.sampler is not None:
            self.backend.close_sampler(seq.sampler)
            seq.sampler = None
