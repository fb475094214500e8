"""Reading model replies: defensive extraction of answers, verdicts, scores, rankings and
code from model text, and answer equivalence.

Every function here accepts arbitrary text and returns ``None`` (or a documented fallback)
when the text does not contain what was asked for; none of them raises on malformed input.
Layers turn a ``None`` into their documented fallback and a ``ctx.warn(...)``.

Example:
    >>> parse_ranking("Ranking: [2] > [1] > [3]", 3)
    Ranking(order=(1, 0, 2), complete=True)
    >>> extract_answer(r"so the answer is \\boxed{\\frac{1}{2}}", "auto")
    '\\\\frac{1}{2}'
    >>> answers_equivalent(r"\\frac{1}{2}", "0.5")
    True
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "ExtractMethod",
    "Ranking",
    "Tally",
    "answers_equivalent",
    "extract_answer",
    "extract_boxed",
    "extract_choice",
    "extract_code",
    "extract_number",
    "group_answers",
    "normalize_text",
    "parse_preference",
    "parse_ranking",
    "parse_score",
    "parse_verdict",
    "tally",
    "to_number",
]

logger = logging.getLogger(__name__)

ExtractMethod = Literal["auto", "number", "boxed", "choice", "code", "text"]

_INT = re.compile(r"\d+")
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_RANKING_MARK = re.compile(r"(?:final\s+)?rank(?:ing)?\s*[:=]", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\.\d+")
_ANSWER_MARK = re.compile(r"(?:final\s+)?answer\s*(?:is)?\s*[:=]?\s*", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_MAX_MATH_CHARS = 400


@dataclass(frozen=True)
class Ranking:
    """A parsed ranking: 0-based indices, best first.

    ``complete`` is False when the text named only some candidates; the missing ones were
    appended in their original order.
    """

    order: tuple[int, ...]
    complete: bool


def _indices(segment: str, n: int) -> list[int]:
    found = _BRACKETED.findall(segment) or _INT.findall(segment)
    order: list[int] = []
    for token in found:
        index = int(token) - 1
        if 0 <= index < n and index not in order:
            order.append(index)
    return order


def parse_ranking(text: str, n: int) -> Ranking | None:
    """Parse a permutation of ``n`` candidates such as ``[2] > [1] > [3]`` or ``2, 1, 3``.

    Looks after the last ``Ranking:`` marker if there is one, else at the last line naming
    at least two candidates, else the whole text. Out-of-range and repeated numbers are
    ignored. Returns None when no candidate number is found.
    """
    if n <= 0:
        return None
    marks = list(_RANKING_MARK.finditer(text))
    if marks:
        segment = text[marks[-1].end() :]
    else:
        lines = [line for line in text.splitlines() if len(_indices(line, n)) >= min(2, n)]
        segment = lines[-1] if lines else text
    order = _indices(segment, n)
    if not order:
        return None
    complete = len(order) == n
    order += [i for i in range(n) if i not in order]
    return Ranking(tuple(order), complete)


_SCORE_MARK = re.compile(
    r"(?:score|rating|grade)\s*(?:is)?\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)"
    r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_FRACTION_SCORE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)", re.I)


def parse_score(text: str, scale: float = 10.0) -> float | None:
    """A score normalised to ``[0, 1]``, or None.

    Reads ``Score: 7``, ``7/10``, ``7 out of 10``, or else the last number of the text. A
    value with an explicit denominator is divided by it; a decimal in ``[0, 1]`` is taken as
    already normalised; otherwise the value is divided by ``scale``. Values outside the
    scale are rejected (None).
    """
    value: float | None = None
    denominator: float | None = None
    marks = list(_SCORE_MARK.finditer(text))
    if marks:
        value = float(marks[-1].group(1))
        denominator = float(marks[-1].group(2)) if marks[-1].group(2) else None
    else:
        fractions = list(_FRACTION_SCORE.finditer(text))
        if fractions:
            value, denominator = float(fractions[-1].group(1)), float(fractions[-1].group(2))
        else:
            numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
            if not numbers:
                return None
            value = float(numbers[-1])
            if "." in numbers[-1] and 0.0 <= value <= 1.0:
                denominator = 1.0
    if denominator is None:
        denominator = 1.0 if ("." in str(value) and 0.0 < value < 1.0) else scale
    if denominator <= 0 or not 0.0 <= value <= denominator:
        return None
    return value / denominator


_YES = r"yes|accept(?:ed)?|correct|pass(?:ed)?|true|valid"
_NO = r"no|reject(?:ed)?|incorrect|wrong|fail(?:ed)?|false|invalid"
_VERDICT_MARK = re.compile(
    rf"(?:verdict|decision|judg(?:e)?ment|answer)\s*[:=]\s*\**\s*({_YES}|{_NO})\b",
    re.IGNORECASE,
)
_VERDICT_WORD = re.compile(rf"\b({_YES}|{_NO})\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """A yes/no verdict: the last ``Verdict: Yes|No`` line, else the first word, else None.

    Synonyms are accepted (accept/reject, correct/incorrect, pass/fail, true/false). A text
    whose only verdict words are ambiguous (both kinds, no marker, no leading word) gives None.
    """
    marks = list(_VERDICT_MARK.finditer(text))
    if marks:
        return _is_yes(marks[-1].group(1))
    stripped = text.strip().lstrip("*#>-` ").lower()
    first = _VERDICT_WORD.match(stripped)
    if first:
        return _is_yes(first.group(1))
    words = {_is_yes(m.group(1)) for m in _VERDICT_WORD.finditer(text)}
    return words.pop() if len(words) == 1 else None


def _is_yes(word: str) -> bool:
    return re.fullmatch(_YES, word, re.IGNORECASE) is not None


_PREFERENCE_MARK = re.compile(
    r"(?:better|winner|preferred|prefer|choice|answer|verdict)\s*(?:response|is)?\s*[:=]?\s*"
    r"\**\s*(?:response|candidate)?\s*\(?\[?\s*([AB12])\b",
    re.IGNORECASE,
)


def parse_preference(text: str) -> Literal["A", "B"] | None:
    """Which of two responses a pairwise judge prefers (``A``/``1`` or ``B``/``2``), or None."""
    marks = list(_PREFERENCE_MARK.finditer(text))
    if marks:
        token = marks[-1].group(1).upper()
    else:
        bare = re.fullmatch(
            r"\W*(?:response|candidate)?\s*\(?\[?([AB12])\]?\)?\W*", text.strip(), re.IGNORECASE
        )
        if bare is None:
            return None
        token = bare.group(1).upper()
    return "A" if token in ("A", "1") else "B"


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i].strip()
        i += 1
    return None


def to_number(text: str) -> float | None:
    """``text`` as a number (``1,234``, ``-0.5``, ``1/2``, ``\\frac{1}{2}``, ``50%``), or None."""
    s = text.strip().strip("$").strip().rstrip(".").replace(",", "").replace(" ", "")
    s = re.sub(r"^\\?\(|\\?\)$", "", s)
    frac = re.fullmatch(r"(-?)\\d?frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}", s)
    if frac:
        s = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}"
    percent = s.endswith("%") or s.endswith("\\%")
    s = s.removesuffix("%").removesuffix("\\")
    try:
        value = float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    return value / 100 if percent else value


def extract_number(text: str) -> str | None:
    """The last number in ``text`` (after an ``Answer:`` marker when there is one)."""
    marks = list(_ANSWER_MARK.finditer(text))
    segment = text[marks[-1].end() :] if marks else text
    found = _NUMBER.findall(segment) or _NUMBER.findall(text)
    if not found:
        return None
    token = found[-1].replace(" ", "").rstrip(".")
    return token if to_number(token) is not None else None


_CHOICE_PATTERNS = (
    re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\**\s*\(?([A-E])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"^\s*\**\(?([A-E])[).:]?\**\s*$", re.MULTILINE),
    re.compile(r"\b([A-E])\b"),
)


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A-E: ``Answer: (B)``, ``(B)``, a line ``B``, or a lone letter."""
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return str(found[-1]).upper()
    return None


def extract_code(text: str) -> str:
    """The program in a model reply: the largest fenced block (Python-tagged ones first).

    Without a fence the whole text is returned (stripped). Ties go to the later block.
    """
    blocks = [(str(lang).lower(), str(body)) for lang, body in _FENCE.findall(text)]
    if not blocks:
        return text.strip()
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    pool = python or [body for _, body in blocks]
    best = max(reversed(pool), key=len)
    return best.strip("\n")


def normalize_text(text: str) -> str:
    """Lower case, no surrounding punctuation/markup, single spaces."""
    s = text.strip().lower()
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = re.sub(r"\s+", " ", s)
    return s.strip(" .,;:!*`'\"$")


def _answer_text(text: str) -> str:
    marks = list(_ANSWER_MARK.finditer(text))
    if marks:
        tail = text[marks[-1].end() :].strip()
        if tail:
            return tail.splitlines()[0]
    return text


def extract_answer(text: str, method: ExtractMethod = "auto") -> str | None:
    """The answer in a candidate's text, by ``method``; None when it has none.

    ``auto``: a ``\\boxed{}`` answer, else the text after an ``Answer:`` marker, else the last
    number, else the whole (normalised) text.
    """
    if method == "boxed":
        return extract_boxed(text)
    if method == "number":
        boxed = extract_boxed(text)
        return (
            boxed if boxed is not None and to_number(boxed) is not None else (extract_number(text))
        )
    if method == "choice":
        return extract_choice(text)
    if method == "code":
        code = extract_code(text)
        return code or None
    if method == "text":
        answer = normalize_text(_answer_text(text))
        return answer or None
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    if _ANSWER_MARK.search(text):
        answer = normalize_text(_answer_text(text))
        if answer:
            return answer
    return extract_number(text) or normalize_text(text) or None


def answers_equivalent(a: str, b: str) -> bool:
    """Whether two extracted answers mean the same.

    Equal after :func:`normalize_text`; or both numbers that are equal (relative tolerance
    1e-9); or mathematically equal according to ``math_verify`` (``\\frac{1}{2}`` vs
    ``0.5``) when that package is installed. Never raises.
    """
    if normalize_text(a) == normalize_text(b):
        return True
    x, y = to_number(a), to_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return _math_verify(a, b)


def _math_verify(a: str, b: str) -> bool:
    if len(a) > _MAX_MATH_CHARS or len(b) > _MAX_MATH_CHARS:
        return False
    try:
        from math_verify import parse, verify  # type: ignore[import-untyped]
    except ImportError:
        return False
    # math_verify's timeouts use SIGALRM, which only the main thread may use.
    limit = 2 if threading.current_thread() is threading.main_thread() else None
    try:
        left = parse(_as_math(a), parsing_timeout=limit)
        right = parse(_as_math(b), parsing_timeout=limit)
        if not left or not right:
            return False
        return bool(verify(left, right, timeout_seconds=limit))
    except Exception as error:  # a third-party parser: any failure means "not shown equal"
        logger.debug("math_verify failed on %r vs %r: %s", a, b, error)
        return False


def _as_math(text: str) -> str:
    stripped = text.strip()
    return stripped if "$" in stripped or "\\boxed" in stripped else f"${stripped}$"


def group_answers(answers: list[str | None]) -> list[list[int]]:
    """Indices of ``answers`` grouped by equivalence, groups in order of first appearance.

    ``None`` answers belong to no group. Each answer joins the first group whose first
    member it is equivalent to.
    """
    groups: list[list[int]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            head = answers[group[0]]
            if head is not None and answers_equivalent(head, answer):
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


@dataclass(frozen=True)
class Tally:
    """The outcome of a vote over extracted answers.

    ``groups`` are indices grouped by equivalent answer (first appearance order) with their
    total ``weights``; ``winner`` indexes ``groups`` (most weight, ties to the group whose
    first member comes first) or is None when no answer could be extracted; ``share`` is
    the winner's weight over the weight of all candidates (unextractable ones included).
    """

    groups: tuple[tuple[int, ...], ...]
    weights: tuple[float, ...]
    winner: int | None
    share: float


def tally(answers: list[str | None], weights: list[float] | None = None) -> Tally:
    """Majority (or weighted) vote over ``answers``; deterministic tie-break (earliest)."""
    weights = weights if weights is not None else [1.0] * len(answers)
    groups = group_answers(answers)
    totals = tuple(sum(weights[i] for i in group) for group in groups)
    everything = sum(weights)
    if not groups:
        return Tally((), (), None, 0.0)
    # groups are in order of first appearance, so max() keeps the earliest among equals
    winner = max(range(len(groups)), key=lambda g: (totals[g], -g))
    share = totals[winner] / everything if everything > 0 else 0.0
    return Tally(tuple(tuple(g) for g in groups), totals, winner, share)
