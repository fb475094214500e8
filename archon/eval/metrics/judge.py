"""LLM-judge metrics: single-answer grading (MT-Bench, 1-10) and pairwise comparison against a
reference answer with both orders judged (Arena-Hard, AlpacaEval).

Judges are ordinary models reached through :meth:`MetricContext.complete` (shared limits, call
cache); their spending is reported on the score, apart from the pipeline's. A judgement that
cannot be parsed gives ``valid=False`` rather than a made-up number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from archon.eval.items import EvalItem
from archon.eval.metrics.base import MetricContext, MetricError, Score
from archon.values import Usage

SINGLE_SYSTEM = "You are a careful, impartial judge of AI assistant answers."

SINGLE_PROMPT = """Rate the quality of the assistant's answer to the user's last message.
Consider helpfulness, relevance, accuracy, depth and level of detail; be as objective as possible.
{reference_block}Begin with a short explanation, then give your rating from 1 to 10 in exactly
this format: "Rating: [[5]]".

[Conversation]
{conversation}
[End of conversation]"""
"""Single-answer grading prompt (in the spirit of MT-Bench's judge; ``{reference_block}`` holds
the reference answer when the item has one)."""

PAIRWISE_PROMPT = """Compare two AI assistant answers to the user's request below and decide
which is better. Judge helpfulness, correctness, relevance and clarity; ignore answer length and
the order in which the answers appear. After a short explanation output exactly one verdict:
"[[A]]" if answer A is better, "[[B]]" if answer B is better, or "[[C]]" for a tie.

[User request]
{question}

[Answer A]
{a}

[Answer B]
{b}"""
"""Pairwise prompt; each comparison is asked twice with the answers swapped."""

_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_LOOSE = re.compile(r"[Rr]ating\s*:?\s*\[?(\d+(?:\.\d+)?)")
_PAIR = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_rating(text: str) -> float | None:
    """The rating in a judgement (``[[7]]``, else ``Rating: 7``), kept within 1..10; or None."""
    found = _RATING.findall(text) or _RATING_LOOSE.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if 1.0 <= value <= 10.0 else None


def parse_pair(text: str) -> str | None:
    """``"A"``, ``"B"`` or ``"C"`` (tie) from a pairwise judgement, or None."""
    found = _PAIR.findall(text)
    return str(found[-1]) if found else None


def _conversation(turns: Sequence[str], answers: Sequence[str]) -> str:
    parts: list[str] = []
    for turn, answer in zip(turns, answers, strict=False):
        parts.append(f"### User:\n{turn}\n\n### Assistant:\n{answer}")
    return "\n\n".join(parts)


def _require(model: str | None, name: str) -> str:
    if model is None:
        raise MetricError(f"the {name} metric needs a judge model (--judge MODEL)")
    return model


@dataclass(frozen=True)
class JudgeSingle:
    """MT-Bench style: the judge rates each turn's answer 1-10 (seeing the conversation up to
    that turn and the reference answer when there is one); the score is the mean rating."""

    judge_model: str | None = None
    max_tokens: int = 512
    name: str = "judge_single"
    needs_model: bool = True

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        model = _require(self.judge_model, self.name)
        ratings: list[float] = []
        usage = Usage()
        for turn in range(min(len(answers), len(item.turns))):
            reference = item.references[turn] if turn < len(item.references) else ""
            block = f"Reference answer (for correctness):\n{reference}\n\n" if reference else ""
            prompt = SINGLE_PROMPT.format(
                reference_block=block,
                conversation=_conversation(item.turns[: turn + 1], answers[: turn + 1]),
            )
            text, spent = await ctx.ask(
                model, prompt, max_tokens=self.max_tokens, system=SINGLE_SYSTEM
            )
            usage = usage + spent
            rating = parse_rating(text)
            if rating is None:
                return Score(
                    value=0.0, valid=False, detail=f"turn {turn + 1}: no rating", usage=usage
                )
            ratings.append(rating)
        if not ratings:
            return Score(value=0.0, valid=False, detail="no answer to rate", usage=usage)
        shown = ", ".join(f"{r:g}" for r in ratings)
        return Score(value=sum(ratings) / len(ratings), detail=f"ratings {shown}", usage=usage)


_POINTS = {"A": 1.0, "C": 0.5, "B": 0.0}


@dataclass(frozen=True)
class JudgePairwise:
    """Arena-Hard / AlpacaEval style: the judge compares the answer with the item's reference
    answer twice, once in each position; win = 1, tie = 0.5, loss = 0, averaged over the two
    orders (so a judge that always prefers position A scores 0.5). ``correct`` is True for a
    win in both orders."""

    judge_model: str | None = None
    max_tokens: int = 512
    name: str = "judge_pairwise"
    needs_model: bool = True

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        model = _require(self.judge_model, self.name)
        if not item.references or not item.references[-1].strip():
            raise MetricError(
                f"{self.name}: item {item.id} has no reference answer to compare with"
            )
        answer, reference = (answers[-1] if answers else ""), item.references[-1]
        question = item.turns[-1]
        usage = Usage()
        points: list[float] = []
        verdicts: list[str] = []
        for first, second, ours in ((answer, reference, "A"), (reference, answer, "B")):
            prompt = PAIRWISE_PROMPT.format(question=question, a=first, b=second)
            text, spent = await ctx.ask(model, prompt, max_tokens=self.max_tokens)
            usage = usage + spent
            verdict = parse_pair(text)
            if verdict is None:
                return Score(value=0.0, valid=False, detail="unparseable verdict", usage=usage)
            # Map to the answer's point of view: "A" in the swapped order means the reference won.
            mine = verdict if ours == "A" else {"A": "B", "B": "A", "C": "C"}[verdict]
            points.append(_POINTS[mine])
            verdicts.append(verdict)
        value = sum(points) / len(points)
        return Score(
            value=value,
            correct=all(p == 1.0 for p in points),
            detail=f"verdicts {verdicts[0]} (answer first), {verdicts[1]} (reference first)",
            usage=usage,
        )
