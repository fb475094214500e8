"""Ground-truth metrics: exact match, free-form match, multiple choice, math equivalence."""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from archon.eval.items import EvalItem
from archon.eval.metrics.base import MetricContext, MetricError, Score
from archon.eval.text import (
    contains_target,
    extract_final,
    format_choices,
    letter,
    matches_target,
    normalize,
    parse_choice,
)
from archon.values import Usage


def _final(answers: Sequence[str]) -> str:
    return answers[-1] if answers else ""


def _need_targets(item: EvalItem, metric: str) -> tuple[str, ...]:
    if not item.targets:
        raise MetricError(f"{metric}: item {item.id} has no target answer")
    return item.targets


@dataclass(frozen=True)
class ExactMatch:
    """Correct when the extracted final answer equals any target after normalisation
    (a numeric target also matches the last number of the final answer)."""

    name: str = "exact_match"
    needs_model: bool = False

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        answer = _final(answers)
        hit = next((t for t in _need_targets(item, self.name) if matches_target(answer, t)), None)
        return Score.of(hit is not None, f"matched {hit!r}" if hit is not None else "")


FREEFORM_PARSER_PROMPT = """You are grading a short answer against gold answers.
Question: {question}
Gold answers (any one is correct): {targets}
Model answer: {answer}
Is the model answer correct, i.e. does it state the same thing as one gold answer? Reply with
[[1]] if it is correct and [[0]] if it is not."""
"""Prompt of the optional LLM parser of :class:`FreeFormMatch` (like MixEval's grader)."""

_VERDICT = re.compile(r"\[\[\s*([01](?:\.\d+)?)\s*\]\]")


@dataclass(frozen=True)
class FreeFormMatch:
    """MixEval free-form scoring: correct when the normalised answer equals, or contains as
    whole words, any accepted target. With ``parser_model`` set, answers the rules reject are
    re-checked by that model (the official MixEval grader uses an LLM for all of them)."""

    parser_model: str | None = None
    max_tokens: int = 16
    name: str = "freeform"

    @property
    def needs_model(self) -> bool:
        return self.parser_model is not None

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        answer = _final(answers)
        targets = _need_targets(item, self.name)
        final = extract_final(answer)
        for target in targets:
            if normalize(final) == normalize(target) or contains_target(answer, target):
                return Score.of(True, f"matched {target!r}")
        if self.parser_model is None or not answer.strip():
            return Score.of(False)
        prompt = FREEFORM_PARSER_PROMPT.format(
            question=item.turns[-1], targets=" | ".join(targets), answer=answer
        )
        text, usage = await ctx.ask(self.parser_model, prompt, max_tokens=self.max_tokens)
        found = _VERDICT.findall(text)
        if not found:
            return Score(
                value=0.0, correct=False, valid=False, detail="unparseable verdict", usage=usage
            )
        return Score.of(float(found[-1]) >= 0.5, "judged by parser", usage)


CHOICE_PARSER_PROMPT = """Which option does this response choose?
Question: {question}
Options:
{options}
Response: {answer}
Reply with the option letter only, or [[none]] if the response picks no option."""
"""Prompt of the optional LLM parser of :class:`MultipleChoice`."""


@dataclass(frozen=True)
class MultipleChoice:
    """Correct when the answer picks (by letter or by option text) a correct option. With
    ``parser_model`` set, answers the rules cannot map to one option are parsed by that model."""

    parser_model: str | None = None
    max_tokens: int = 8
    name: str = "multiple_choice"

    @property
    def needs_model(self) -> bool:
        return self.parser_model is not None

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        if not item.choices or not item.correct_choices:
            raise MetricError(f"{self.name}: item {item.id} has no options or no correct option")
        answer = _final(answers)
        picked = parse_choice(answer, item.choices)
        usage = Usage()
        if picked is None and self.parser_model is not None and answer.strip():
            prompt = CHOICE_PARSER_PROMPT.format(
                question=item.turns[-1], options=format_choices(item.choices), answer=answer
            )
            text, usage = await ctx.ask(self.parser_model, prompt, max_tokens=self.max_tokens)
            picked = parse_choice(text, item.choices)
        if picked is None:
            return Score(value=0.0, correct=False, detail="no option picked", usage=usage)
        ok = picked in item.correct_choices
        return Score.of(ok, f"picked {letter(picked)}", usage)


def _gold(target: str) -> str:
    """Wrap a bare gold answer so math-verify parses it as LaTeX."""
    if "\\boxed" in target or "$" in target:
        return target
    return f"${target}$"


_MAX_MATH_CHARS = 20_000


def _math_parse(text: str) -> list[object]:
    """math-verify's parse, bounded in time (SIGALRM only works on the main thread)."""
    from math_verify import parse  # type: ignore[import-untyped]

    limit = 3 if threading.current_thread() is threading.main_thread() else None
    try:
        return list(parse(text[-_MAX_MATH_CHARS:], parsing_timeout=limit))
    except Exception:  # a third-party parser: any failure means "nothing parsed"
        return []


def _math_equal(gold: list[object], predicted: list[object]) -> bool:
    from math_verify import verify

    limit = 3 if threading.current_thread() is threading.main_thread() else None
    try:
        return bool(verify(gold, predicted, timeout_seconds=limit))
    except Exception:  # a third-party checker: any failure means "not shown equal"
        return False


@dataclass(frozen=True)
class MathEquivalence:
    """Correct when math-verify finds the answer's final expression equal to a target
    (``\\boxed{}``, fractions, decimals and equivalent expressions are handled)."""

    name: str = "math"
    needs_model: bool = False

    async def score(self, item: EvalItem, answers: Sequence[str], ctx: MetricContext) -> Score:
        if importlib.util.find_spec("math_verify") is None:  # pragma: no cover - a dependency
            raise MetricError("the math metric needs math-verify: pip install math-verify")
        predicted = _math_parse(_final(answers))
        for target in _need_targets(item, self.name):
            gold = _math_parse(_gold(target))
            if gold and predicted and _math_equal(gold, predicted):
                return Score.of(True, f"equal to {target!r}")
        if predicted:
            return Score.of(False, f"parsed {predicted[-1]!s}")
        return Score.of(False, "no answer found")
