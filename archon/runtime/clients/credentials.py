"""``Credentials``: the key each model's requests carry, and redaction of every key in play.

Shared by the clients that send keys (litellm, OpenAI-compatible): the decision is made once
per model by :class:`~archon.runtime.clients.keys.KeyPolicy`, and error messages are redacted with a
:class:`~archon.runtime.secrets.Redactor` that knows the keys given in Python, the keys
decided so far and the environment's secrets.
"""

from __future__ import annotations

from collections.abc import Mapping

from archon.runtime.clients.base import ModelOptions
from archon.runtime.clients.keys import KeyDecision, KeyPolicy
from archon.runtime.secrets import Redactor


class Credentials:
    """Key decisions and redaction for one client's models.

    Args:
        options: per-model options keyed by model string (read, never copied).
        keys: which keys may go where (default: none confirmed, only provider hosts).
        redactor: redacts messages until the first key decision (then one is built from the
            environment and the keys in play, when first needed).
    """

    def __init__(
        self,
        options: Mapping[str, ModelOptions],
        keys: KeyPolicy | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._options = options
        self._keys = keys or KeyPolicy()
        self._redactor = redactor
        self._decisions: dict[str, KeyDecision] = {}

    def decision(self, model: str) -> KeyDecision:
        """Which key requests for ``model`` carry (decided once, on first use)."""
        if model not in self._decisions:
            options = self._options.get(model, ModelOptions())
            self._decisions[model] = self._keys.decide(model, options)
            self._redactor = None  # a new key to redact
        return self._decisions[model]

    def redact(self, text: str) -> str:
        """``text`` without any key given in Python, decided for a model or in the environment."""
        if self._redactor is None:
            keys = [o.api_key for o in self._options.values() if o.api_key]
            keys += [d.key for d in self._decisions.values() if d.key]
            self._redactor = Redactor.from_environ(extra=keys)
        return self._redactor.redact(text)
