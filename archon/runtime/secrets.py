"""Redaction of secrets (API keys, bearer tokens) from anything archon writes or raises.

Traces, logs, cache entries and error messages pass through a :class:`Redactor` built from
the environment *at run time* (never at import): the values of variables whose names end in
``_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD``, plus explicit values (e.g. an ``api_key``
given in Python), plus patterns that look like keys (``sk-...``, ``Bearer ...``,
``api_key=...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REDACTED = "[REDACTED]"
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_APIKEY")
_MIN_SECRET_LEN = 6
_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{12,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-\.=:/+]{6,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|authorization|access[_-]?token)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}]{4,}"
    ),
)


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values of environment variables whose names mark them as secrets."""
    return tuple(
        value
        for name, value in environ.items()
        if name.upper().endswith(_SECRET_SUFFIXES) and len(value) >= _MIN_SECRET_LEN
    )


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values and key-like patterns with ``[REDACTED]``."""

    values: tuple[str, ...] = field(default=())

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()
    ) -> Redactor:
        """A redactor for the secrets in ``environ`` (default: ``os.environ``) and ``extra``."""
        env = os.environ if environ is None else environ
        found = {*secret_values(env), *(v for v in extra if len(v) >= _MIN_SECRET_LEN)}
        # Longest first, so a secret containing another is replaced whole.
        return cls(tuple(sorted(found, key=len, reverse=True)))

    def with_values(self, extra: Iterable[str]) -> Redactor:
        """A copy that also redacts ``extra``."""
        found = {*self.values, *(v for v in extra if len(v) >= _MIN_SECRET_LEN)}
        return Redactor(tuple(sorted(found, key=len, reverse=True)))

    def redact(self, text: str) -> str:
        """``text`` with every secret value and key-like pattern replaced."""
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _PATTERNS:
            if pattern.groups:
                text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
            else:
                text = pattern.sub(REDACTED, text)
        return text

    def redact_values(self, text: str) -> str:
        """Only exact secret values (used on model output, where patterns could misfire)."""
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text
