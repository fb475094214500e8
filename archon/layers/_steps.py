"""The step protocol shared by ``beam_search`` and ``particle_filter``.

A partial answer is a sequence of **steps** separated by ``delimiter`` (a blank line by
default). To extend it by one step, the layer sends the steps so far as the request's
``assistant_prefix`` (each step followed by the delimiter), with the delimiter as a stop
string and ``step_tokens`` as ``max_tokens``; the reply is the continuation only. A reply is
read as follows (backends drop the stop string, so "stopped at the delimiter" and "ended the
turn" look alike; the next expansion tells them apart):

* the text up to the first delimiter it contains (if any) is the new step, stripped;
* an empty step means the model ended its turn: the answer is complete, with no new step;
* a step matching ``final_pattern`` (``\\boxed{``, "the answer is", "Answer:") completes it;
* a step cut at ``step_tokens`` (finish reason ``length``) is kept, and the next step
  continues it;
* an answer with ``max_steps`` steps is complete.

Private to the package (the leading underscore keeps it out of the kind scan).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import Field, field_validator, model_validator

from archon.layers._calls import complete_all
from archon.layers.answers import ExtractMethod, extract_answer
from archon.layers.base import LayerContext, LayerParams
from archon.layers.prompts import answer_messages
from archon.values import Candidate, Candidates, Completion, CompletionRequest, Message

DEFAULT_DELIMITER = "\n\n"
DEFAULT_FINAL_PATTERN = r"\\boxed\{|\b(?:final answer|the answer is)\b|^\W*answer\s*:"
"""Searched case-insensitively, line by line (``^`` is the start of any line)."""

STEP_SYSTEM_PROMPT = (
    "Solve the problem step by step. Write each step as one short paragraph and separate the"
    " steps with a blank line. Finish with the final answer written as \\boxed{answer}."
)
STEP_PROMPT = "{query}"

Aggregate = Literal["last", "min", "prod", "mean"]
Reason = Literal["", "answer", "end", "max_steps"]


class StepSearchParams(LayerParams):
    """Knobs shared by the step-level search kinds (see ``docs/layers.md``)."""

    model: str = Field(min_length=1)
    max_steps: int = Field(8, ge=1, le=64)
    step_tokens: int = Field(256, ge=1, le=32768)
    """Generation bound of one step (the ``max_tokens`` of each expansion)."""
    delimiter: str = Field(DEFAULT_DELIMITER, min_length=1)
    final_pattern: str = DEFAULT_FINAL_PATTERN
    scorer: Literal["self_eval", "logprob", "prm"] = "self_eval"
    judge: str | None = Field(None, min_length=1)
    """Model of the ``self_eval`` scorer (default: ``model`` judges itself)."""
    prm_url: str | None = None
    """Endpoint of the ``prm`` scorer (``POST {question, steps}`` -> ``{scores}``)."""
    aggregate: Aggregate = "last"
    check: Literal["none", "answer"] = "none"
    """``answer``: a finished answer with no extractable final answer is pruned (score 0)."""
    extract: ExtractMethod = "auto"
    temperature: float | None = Field(0.8, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    prompt: str | None = None
    system_prompt: str | None = None
    judge_prompt: str | None = None
    """Override of the ``self_eval`` prompt (placeholders ``{query}``, ``{steps}``)."""

    @field_validator("final_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"final_pattern is not a valid regular expression: {e}") from e
        return value

    @model_validator(mode="after")
    def _prm_needs_url(self) -> StepSearchParams:
        if self.scorer == "prm" and not (self.prm_url or "").startswith(("http://", "https://")):
            raise ValueError('scorer "prm" needs prm_url = "http://host:port/path"')
        return self


@dataclass(frozen=True)
class Partial:
    """A partial answer: its steps, the process score of each step, and whether it is done.

    ``origin`` is the index of the first-step sample it descends from; ``pruned`` marks a
    finished answer the final-answer check rejected (its score is 0)."""

    steps: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    logprobs: tuple[float | None, ...] = ()
    reason: Reason = ""
    origin: int = 0
    pruned: bool = False

    @property
    def complete(self) -> bool:
        return self.reason != ""

    def text(self, delimiter: str) -> str:
        return delimiter.join(self.steps)

    def prefix(self, delimiter: str) -> str | None:
        """What the model continues: every step followed by the delimiter (None: no step)."""
        return delimiter.join(self.steps) + delimiter if self.steps else None

    def score(self, aggregate: Aggregate) -> float:
        """The process score: the step scores aggregated (0 when none or pruned)."""
        if self.pruned or not self.scores:
            return 0.0
        if aggregate == "last":
            return self.scores[-1]
        if aggregate == "min":
            return min(self.scores)
        if aggregate == "prod":
            return math.prod(self.scores)
        return sum(self.scores) / len(self.scores)

    def scored(self, score: float) -> Partial:
        """With the score of its newest step appended."""
        return replace(self, scores=(*self.scores, min(1.0, max(0.0, score))))


def extend(partial: Partial, completion: Completion | None, params: StepSearchParams) -> Partial:
    """``partial`` after one expansion reply (see the module docstring for the rules)."""
    text = completion.text if completion is not None else ""
    cut = text.find(params.delimiter)
    step = (text[:cut] if cut >= 0 else text).strip()
    if not step:
        return replace(partial, reason="end")
    logprob = completion.logprob if completion is not None else None
    grown = replace(partial, steps=(*partial.steps, step), logprobs=(*partial.logprobs, logprob))
    if re.search(params.final_pattern, step, re.IGNORECASE | re.MULTILINE):
        return replace(grown, reason="answer")
    if len(grown.steps) >= params.max_steps:
        return replace(grown, reason="max_steps")
    return grown


def step_messages(query: tuple[Message, ...], params: StepSearchParams) -> tuple[Message, ...]:
    """The conversation every expansion continues (system prompt and user prompt applied)."""
    return answer_messages(
        query, params.prompt, system=params.system_prompt, default_system=STEP_SYSTEM_PROMPT
    )


def request_tokens(request: CompletionRequest) -> int:
    """A generous bound of what the meter reserves for ``request`` (prompt, prefix, output),
    counted the way the runtime estimates prompts: about three bytes per token."""
    size = sum(len(m.content.encode()) for m in request.messages)
    size += len((request.assistant_prefix or "").encode())
    return math.ceil(size / 3) + 8 * (len(request.messages) + 2) + (request.max_tokens or 4096)


class Expander:
    """Builds and sends the expansion requests of one run: one sample per request, each with
    its own seed (``base + k`` for the k-th expansion), so copies of one partial diverge."""

    def __init__(self, ctx: LayerContext, params: StepSearchParams) -> None:
        self._params = params
        self._messages = step_messages(ctx.query, params)
        self._base = params.seed if params.seed is not None else ctx.rng.randrange(1 << 30)
        self._sent = 0

    def request(self, partial: Partial, offset: int = 0) -> CompletionRequest:
        p = self._params
        return CompletionRequest(
            model=p.model,
            messages=self._messages,
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.step_tokens,
            seed=self._base + self._sent + offset,
            stop=(p.delimiter,),
            logprobs=p.scorer == "logprob",
            assistant_prefix=partial.prefix(p.delimiter),
        )

    async def expand(self, ctx: LayerContext, partials: Sequence[Partial]) -> list[Partial]:
        """Each of ``partials`` extended by one step, concurrently (steps not yet scored)."""
        requests = [self.request(p, k) for k, p in enumerate(partials)]
        self._sent += len(requests)
        responses = await complete_all(ctx, requests)
        return [
            extend(p, r.completions[0] if r.completions else None, self._params)
            for p, r in zip(partials, responses, strict=True)
        ]


def apply_check(partial: Partial, params: StepSearchParams) -> Partial:
    """The final-answer check: prune a finished answer with no extractable answer."""
    if params.check == "none" or not partial.complete or partial.pruned:
        return partial
    if extract_answer(partial.text(params.delimiter), params.extract) is not None:
        return partial
    return replace(partial, pruned=True)


def ranked(partials: Sequence[Partial], aggregate: Aggregate) -> list[Partial]:
    """Best process score first; ties keep their order."""
    return sorted(partials, key=lambda p: -p.score(aggregate))


def to_candidates(
    ctx: LayerContext,
    params: StepSearchParams,
    completed: Sequence[Partial],
    partial: Sequence[Partial],
    limit: int,
) -> Candidates:
    """Finished answers first, then unfinished ones, each group best first; at most
    ``limit``. Each candidate carries its process score as ``score`` and signal."""
    chosen = [*ranked(completed, params.aggregate), *ranked(partial, params.aggregate)][:limit]
    if chosen and not completed:
        ctx.warn(
            f"no answer finished (stopped after {max(len(p.steps) for p in chosen)} steps);"
            " returning the best partial answers"
        )
    unanswered = sum(p.reason in ("max_steps", "end") and not _has_final(p, params) for p in chosen)
    if unanswered:
        ctx.warn(
            f"{unanswered} of {len(chosen)} answers ended without a final answer"
            f" matching final_pattern (max_steps = {params.max_steps})"
        )
    items = []
    for partial_answer in chosen:
        score = partial_answer.score(params.aggregate)
        known = [lp for lp in partial_answer.logprobs if lp is not None]
        candidate = Candidate(
            text=partial_answer.text(params.delimiter),
            model=params.model,
            sample_index=partial_answer.origin,
            source_node=ctx.node_id,
            score=score,
            logprob=sum(known) / len(known) if known else None,
        )
        items.append(candidate.with_signal("process_score", score))
    return Candidates(items=tuple(items))


def _has_final(partial: Partial, params: StepSearchParams) -> bool:
    pattern = re.compile(params.final_pattern, re.IGNORECASE | re.MULTILINE)
    return any(pattern.search(step) for step in partial.steps)
