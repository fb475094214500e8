"""Answer normalisation and extraction shared by the string-matching metrics.

Chat models wrap answers in prose ("The answer is 42."), so matching first extracts the final
answer, then normalises both sides the SQuAD way (lower case, no punctuation, no articles,
single spaces).
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_MARKERS = (
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"),
    re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE),
)
_LETTERS = string.ascii_uppercase


def normalize(text: str) -> str:
    """Lower case, strip punctuation and the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_final(answer: str) -> str:
    """The final answer inside ``answer``: the last ``\\boxed{...}``, else what follows the
    last "answer is"/"answer:", else the whole text (stripped)."""
    for marker in _MARKERS:
        found = marker.findall(answer)
        if found:
            value = str(found[-1]).strip()
            line = value.splitlines()[0] if value else value
            return line.strip().rstrip(".").strip()
    return answer.strip()


def parse_number(text: str) -> float | None:
    """``text`` as a number (commas allowed), or None."""
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def last_number(text: str) -> float | None:
    """The last number written in ``text``, or None."""
    found = _NUMBER.findall(text)
    return parse_number(found[-1]) if found else None


def matches_target(answer: str, target: str) -> bool:
    """Exact match after extraction and normalisation; a numeric target also matches the
    last number of the extracted answer (``"23 + 45 = 68"`` matches ``"68"``)."""
    final = extract_final(answer)
    if normalize(final) == normalize(target) and normalize(target):
        return True
    wanted = parse_number(target)
    if wanted is None:
        return False
    got = last_number(final)
    return got is not None and abs(got - wanted) <= 1e-9 * max(1.0, abs(wanted))


def contains_target(answer: str, target: str) -> bool:
    """Whether the normalised target appears in the normalised answer as whole words."""
    wanted = normalize(target)
    if not wanted:
        return False
    return re.search(rf"(?:^| ){re.escape(wanted)}(?: |$)", normalize(answer)) is not None


def letter(index: int) -> str:
    """``0 -> "A"``, ``1 -> "B"`` ... (options beyond Z get numbers)."""
    return _LETTERS[index] if index < len(_LETTERS) else str(index + 1)


def format_choices(choices: tuple[str, ...]) -> str:
    """Options as ``A. text`` lines."""
    return "\n".join(f"{letter(i)}. {choice}" for i, choice in enumerate(choices))


def parse_choice(answer: str, choices: tuple[str, ...]) -> int | None:
    """The option index an answer picks, by letter (``B``, ``(B)``, ``B.``, "answer is B") or
    by repeating one option's text; None when it cannot tell."""
    count = len(choices)
    if count == 0:
        return None
    letters = _LETTERS[: min(count, len(_LETTERS))]
    text = answer.strip()
    patterns = (
        rf"(?i:answer)(?:\s+is)?\s*[:\-]?\s*(?i:option\s+)?\(?([{letters}])\)?(?:[.):,\s]|$)",
        rf"^\W*\(?([{letters}])\)?(?:[.):]|\s*$)",
        rf"\b(?i:option)\s+\(?([{letters}])\)?(?:\W|$)",
    )
    for pattern in patterns:
        found = re.findall(pattern, text, flags=re.MULTILINE)
        if found:
            return letters.index(found[-1])
    norm = normalize(extract_final(text))
    exact = [i for i, c in enumerate(choices) if normalize(c) == norm]
    if len(exact) == 1:
        return exact[0]
    mentioned = [i for i, c in enumerate(choices) if contains_target(text, c)]
    return mentioned[0] if len(mentioned) == 1 else None
