"""Which API key a model request may carry: keys go only where they belong.

Threat model: a ``.pipe`` file is shared data (a repository, a paper's artifact, a colleague's
message), not trusted configuration. It may say where a model is served (``api_base``) and
which variable holds a key for that server (``api_key_env``), but that alone must never
make archon send one of the user's credentials to a host the file chose. So:

1. A key given in Python (``ModelOptions.api_key``) is the caller's own choice and is used.
2. A provider's key goes only to that provider's own host, decided on the URL's parsed host
   (``https://api.openai.com/...`` gets ``OPENAI_API_KEY``; ``api.openai.com.evil.example``
   or ``evil.example/?api.openai.com`` do not). With no ``api_base`` the backend talks to the
   provider's default endpoint and picks the provider's variable itself.
3. Any other key travels only through an explicit ``api_key_env`` that names a key variable
   (upper case, ending in ``_API_KEY`` or ``_TOKEN``: never ``PATH`` or ``HOME``) *and* that
   the user confirmed outside the ``.pipe`` file for that host: ``--allow-key VAR[@host[:port]]``
   on the command line, or ``$ARCHON_HOME/keys.toml``::

       MY_SERVER_API_KEY = ["gpu-box.internal:8000", "127.0.0.1"]
       LAB_TOKEN = ["*"]          # any host (think twice)

Otherwise the request goes without a key and :class:`KeyDecision.warning` says which flag
would allow it. Only the decision function reads the environment, at call time.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from archon.errors import ArchonError
from archon.ir import is_key_variable
from archon.runtime.clients.base import ModelOptions

__all__ = [
    "PROVIDER_HOSTS",
    "Endpoint",
    "KeyDecision",
    "KeyGrant",
    "KeyPolicy",
    "KeyPolicyError",
    "endpoint_of",
    "normalise_api_base",
]

KEYS_FILE = "keys.toml"

# Each provider's key variable(s) and the hosts that own them (https only).
PROVIDER_HOSTS: Mapping[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("api.openai.com",),
    "ANTHROPIC_API_KEY": ("api.anthropic.com",),
    "TOGETHER_API_KEY": ("api.together.xyz", "api.together.ai"),
    "TOGETHERAI_API_KEY": ("api.together.xyz", "api.together.ai"),
    "GROQ_API_KEY": ("api.groq.com",),
    "MISTRAL_API_KEY": ("api.mistral.ai",),
    "DEEPSEEK_API_KEY": ("api.deepseek.com",),
    "FIREWORKS_API_KEY": ("api.fireworks.ai",),
    "FIREWORKS_AI_API_KEY": ("api.fireworks.ai",),
    "OPENROUTER_API_KEY": ("openrouter.ai",),
    "GEMINI_API_KEY": ("generativelanguage.googleapis.com",),
    "XAI_API_KEY": ("api.x.ai",),
    "COHERE_API_KEY": ("api.cohere.ai", "api.cohere.com"),
    "DEEPINFRA_API_KEY": ("api.deepinfra.com",),
    "PERPLEXITYAI_API_KEY": ("api.perplexity.ai",),
}

# The default endpoint host behind a litellm provider prefix, where known.
_PROVIDER_DEFAULT_HOST = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "together_ai": "api.together.xyz",
    "groq": "api.groq.com",
    "mistral": "api.mistral.ai",
    "deepseek": "api.deepseek.com",
    "fireworks_ai": "api.fireworks.ai",
    "openrouter": "openrouter.ai",
    "gemini": "generativelanguage.googleapis.com",
    "xai": "api.x.ai",
    "cohere": "api.cohere.ai",
    "deepinfra": "api.deepinfra.com",
    "perplexity": "api.perplexity.ai",
}


class KeyPolicyError(ArchonError):
    """An ``--allow-key`` value or ``keys.toml`` entry that cannot be understood."""


@dataclass(frozen=True)
class Endpoint:
    """The parsed destination of a request: scheme, lower-case host and port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def endpoint_of(api_base: str) -> Endpoint | None:
    """The endpoint of an ``http(s)://`` URL (None for anything else)."""
    try:
        parts = urlsplit(api_base.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, parts.hostname.lower().rstrip("."), port or default)


def normalise_api_base(api_base: str) -> str:
    """``api_base`` in one spelling per endpoint: lower-case scheme and host, default port
    dropped, no trailing slash, no user info (so it can key a cache without a secret)."""
    text = api_base.strip()
    endpoint = endpoint_of(text)
    if endpoint is None:
        return text.rstrip("/")
    parts = urlsplit(text)
    default = 443 if endpoint.scheme == "https" else 80
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    netloc = host if endpoint.port == default else f"{host}:{endpoint.port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{endpoint.scheme}://{netloc}{path}{query}"


@dataclass(frozen=True)
class KeyGrant:
    """The user's confirmation that variable ``var`` may be sent to ``hosts``.

    ``hosts`` holds ``host`` (any port) or ``host:port`` entries; None means any host.
    """

    var: str
    hosts: frozenset[str] | None = None

    @classmethod
    def parse(cls, text: str) -> KeyGrant:
        """``VAR`` or ``VAR@host`` or ``VAR@host:port`` (an ``--allow-key`` value)."""
        var, _, host = text.strip().partition("@")
        _check_var(var, text)
        if not host:
            return cls(var)
        return cls(var, frozenset({_check_host(host, text)}))

    def allows(self, var: str, endpoint: Endpoint | None) -> bool:
        """Whether this grant lets ``var`` go to ``endpoint`` (None: the provider default)."""
        if var != self.var:
            return False
        if self.hosts is None or "*" in self.hosts:
            return True
        if endpoint is None:
            return False
        return endpoint.host in self.hosts or str(endpoint) in self.hosts


def _check_var(var: str, where: str) -> None:
    if not is_key_variable(var):
        raise KeyPolicyError(
            f"{where!r}: {var!r} is not a key variable; keys are allowed only from upper-case"
            " variables ending in _API_KEY or _TOKEN"
        )


def _check_host(host: str, where: str) -> str:
    if host == "*":
        return host
    endpoint = endpoint_of(f"http://{host}")
    if endpoint is None or "/" in host:
        raise KeyPolicyError(f"{where!r}: {host!r} is not a host or host:port")
    # Keep the port only when the user wrote one.
    return str(endpoint) if _has_port(host) else endpoint.host


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1 if host.startswith("[") else ":" in host


@dataclass(frozen=True)
class KeyDecision:
    """What one model's requests carry.

    Attributes:
        key: the key to send (None: send none).
        source: where it came from (a variable name, or ``"api_key"`` for a Python value).
        warning: why a key that was asked for is not sent, and how to allow it.
    """

    key: str | None = field(default=None, repr=False)
    source: str | None = None
    warning: str | None = None

    def auth_hint(self) -> str:
        """What to add to a 401/403 error: why no key went, or which key was refused."""
        if self.warning:
            return f" -- {self.warning}"
        if self.key is None:
            return (
                " -- no key was sent: name the key's variable in the models block"
                ' (api_key_env = "MY_SERVER_API_KEY") and confirm it with'
                " --allow-key MY_SERVER_API_KEY@host:port"
            )
        return f" -- the key from {self.source} was refused"


@dataclass(frozen=True)
class KeyPolicy:
    """The user's key grants (``--allow-key`` flags and ``keys.toml``) and the decisions.

    Example:
        >>> policy = KeyPolicy.from_strings(["MY_SERVER_API_KEY@127.0.0.1:8000"])
        >>> options = ModelOptions(api_base="http://127.0.0.1:8000/v1",
        ...                        api_key_env="MY_SERVER_API_KEY")
        >>> policy.decide("openai/x", options, {"MY_SERVER_API_KEY": "k"}).key
        'k'
    """

    grants: tuple[KeyGrant, ...] = ()

    @classmethod
    def from_strings(cls, values: Iterable[str]) -> KeyPolicy:
        """A policy from ``--allow-key`` values."""
        return cls(tuple(KeyGrant.parse(v) for v in values))

    @classmethod
    def load(cls, home: Path | None, allow: Iterable[str] = ()) -> KeyPolicy:
        """``--allow-key`` values plus ``home/keys.toml`` when it exists."""
        grants = [KeyGrant.parse(v) for v in allow]
        if home is not None:
            grants += _read_keys_file(home / KEYS_FILE)
        return cls(tuple(grants))

    def allows(self, var: str, endpoint: Endpoint | None) -> bool:
        """Whether the user confirmed ``var`` for ``endpoint``."""
        return any(grant.allows(var, endpoint) for grant in self.grants)

    def decide(
        self, model: str, options: ModelOptions, environ: Mapping[str, str] | None = None
    ) -> KeyDecision:
        """The key (if any) that requests for ``model`` with ``options`` may carry."""
        env = os.environ if environ is None else environ
        if options.api_key:
            return KeyDecision(options.api_key, "api_key")
        endpoint = endpoint_of(options.api_base) if options.api_base else None
        if options.api_base and endpoint is None:
            return KeyDecision(warning=f"{model}: api_base {options.api_base!r} is not a URL")
        owner = _owner_of(endpoint) if endpoint is not None else None
        wanted = options.api_key_env
        if wanted is None:
            if owner is not None and env.get(owner):
                return KeyDecision(env[owner], owner)
            return KeyDecision()
        destination = endpoint if endpoint is not None else _default_endpoint(model)
        if not is_key_variable(wanted):
            return KeyDecision(
                warning=f"{model}: api_key_env {wanted!r} is not a key variable (a name ending"
                " in _API_KEY or _TOKEN); no key is sent"
            )
        own = destination is not None and _owner_of(destination) == wanted
        if not (own or self.allows(wanted, destination)):
            where = str(destination) if destination is not None else None
            flag = f"--allow-key {wanted}@{where}" if where else f"--allow-key {wanted}"
            entry = f'{wanted} = ["{where or "*"}"]'
            return KeyDecision(
                warning=f"{model}: the .pipe file asks to send ${wanted} to"
                f" {where or 'the provider'}; no key is sent until you confirm it with"
                f" {flag} (or {entry} in $ARCHON_HOME/{KEYS_FILE})"
            )
        value = env.get(wanted)
        if not value:
            return KeyDecision(warning=f"{model}: ${wanted} is not set; no key is sent")
        return KeyDecision(value, wanted)


def _owner_of(endpoint: Endpoint) -> str | None:
    """The provider variable whose own host ``endpoint`` is (https only)."""
    if endpoint.scheme != "https" or endpoint.port != 443:
        return None
    for var, hosts in PROVIDER_HOSTS.items():
        if endpoint.host in hosts:
            return var
    return None


def _default_endpoint(model: str) -> Endpoint | None:
    host = _PROVIDER_DEFAULT_HOST.get(model.split("/", 1)[0])
    return Endpoint("https", host, 443) if host else None


def _read_keys_file(path: Path) -> list[KeyGrant]:
    """Grants of ``keys.toml``: ``VAR = ["host:port", ...]`` (``"*"`` for any host)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise KeyPolicyError(f"{path}: cannot read the key grants ({error})") from error
    grants = []
    for var, hosts in data.items():
        where = f"{path}: {var}"
        _check_var(var, where)
        if isinstance(hosts, str):
            hosts = [hosts]
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise KeyPolicyError(f'{where}: expected a list of hosts, e.g. {var} = ["host:port"]')
        grants.append(KeyGrant(var, frozenset(_check_host(h, where) for h in hosts)))
    return grants
