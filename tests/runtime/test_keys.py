"""Keys go only where they belong: the decision function, and a loopback server that records
the Authorization header it receives (no request leaves 127.0.0.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from archon.errors import ArchonError
from archon.ir import ModelSpec, Param
from archon.runtime.clients.base import ModelCallError, ModelOptions
from archon.runtime.clients.keys import (
    KeyGrant,
    KeyPolicy,
    KeyPolicyError,
    endpoint_of,
    normalise_api_base,
)
from archon.runtime.clients.litellm import NO_KEY, LiteLLMClient
from archon.runtime.clients.openai_compat import OpenAICompatClient
from archon.runtime.clients.router import RouterClient, options_from_spec
from archon.values import CompletionRequest, Message

from .fake_server import serve

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
SERVER_KEY = "server-key-0123456789"
ENV = {
    "OPENAI_API_KEY": OPENAI_KEY,
    "ANTHROPIC_API_KEY": "anthropic-key-0123456789",
    "MY_SERVER_API_KEY": SERVER_KEY,
    "PATH": "/usr/bin:/bin",
}


def _decide(policy: KeyPolicy, model: str = "openai/x", **options: object) -> str | None:
    return policy.decide(model, ModelOptions(**options), ENV).key  # type: ignore[arg-type]


# --- the decision function ------------------------------------------------------------------


@pytest.mark.parametrize(
    "api_base",
    [
        "https://api.openai.com/v1",
        "https://API.OpenAI.com:443/v1/",
        "https://api.openai.com./v1",
    ],
)
def test_openai_key_reaches_the_openai_host(api_base: str) -> None:
    assert _decide(KeyPolicy(), api_base=api_base) == OPENAI_KEY


@pytest.mark.parametrize(
    "api_base",
    [
        "https://api.openai.com.evil.example/v1",
        "https://evil.example/api.openai.com/v1",
        "https://evil.example/v1?host=api.openai.com",
        "https://api.openai.com@evil.example/v1",
        "https://evilapi.openai.com/v1",
        "http://api.openai.com/v1",  # not https
        "https://api.openai.com:8443/v1",  # another port
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000/v1",
    ],
)
def test_openai_key_never_reaches_another_host(api_base: str) -> None:
    assert _decide(KeyPolicy(), api_base=api_base) is None


def test_a_provider_key_goes_to_its_own_host_only() -> None:
    assert _decide(KeyPolicy(), api_base="https://api.anthropic.com/v1") == ENV["ANTHROPIC_API_KEY"]
    asked = {"api_base": "https://api.anthropic.com/v1", "api_key_env": "OPENAI_API_KEY"}
    assert _decide(KeyPolicy(), **asked) is None


def test_without_api_base_only_the_providers_own_variable_passes() -> None:
    # The backend picks the provider's own key itself; naming another variable needs a grant.
    assert _decide(KeyPolicy()) is None
    assert _decide(KeyPolicy(), api_key_env="OPENAI_API_KEY") == OPENAI_KEY
    refused = KeyPolicy().decide(
        "anthropic/claude", ModelOptions(api_key_env="OPENAI_API_KEY"), ENV
    )
    assert (
        refused.key is None and refused.warning and "--allow-key OPENAI_API_KEY" in refused.warning
    )


def test_custom_api_base_needs_a_confirmed_variable() -> None:
    options = {"api_base": "http://127.0.0.1:8000/v1", "api_key_env": "MY_SERVER_API_KEY"}
    decision = KeyPolicy().decide("openai/x", ModelOptions(**options), ENV)  # type: ignore[arg-type]
    assert decision.key is None
    assert decision.warning is not None
    assert "--allow-key MY_SERVER_API_KEY@127.0.0.1:8000" in decision.warning
    for grant in (
        "MY_SERVER_API_KEY",
        "MY_SERVER_API_KEY@127.0.0.1",
        "MY_SERVER_API_KEY@127.0.0.1:8000",
    ):
        assert _decide(KeyPolicy.from_strings([grant]), **options) == SERVER_KEY, grant
    for grant in (
        "MY_SERVER_API_KEY@127.0.0.1:9000",
        "MY_SERVER_API_KEY@other.host",
        "OTHER_API_KEY",
    ):
        assert _decide(KeyPolicy.from_strings([grant]), **options) is None, grant


@pytest.mark.parametrize("variable", ["PATH", "HOME", "AWS_SECRET_ACCESS_KEY", "my_api_key", ""])
def test_api_key_env_must_name_a_key_variable(variable: str) -> None:
    options = ModelOptions(api_base="http://127.0.0.1:8000/v1", api_key_env=variable or None)
    # Even a blanket grant cannot make PATH a key, and the grant itself is refused.
    decision = KeyPolicy((KeyGrant("MY_SERVER_API_KEY"),)).decide("openai/x", options, ENV)
    assert decision.key is None
    if variable:
        assert decision.warning and "not a key variable" in decision.warning
        with pytest.raises(KeyPolicyError):
            KeyGrant.parse(variable)


def test_a_python_key_is_the_callers_choice() -> None:
    assert _decide(KeyPolicy(), api_base="http://h:1/v1", api_key="explicit-key") == "explicit-key"


def test_keys_file_grants(tmp_path: Path) -> None:
    (tmp_path / "keys.toml").write_text('MY_SERVER_API_KEY = ["127.0.0.1:8000"]\nLAB_TOKEN = "*"\n')
    policy = KeyPolicy.load(tmp_path, ["EXTRA_TOKEN@h"])
    here = endpoint_of("http://127.0.0.1:8000/v1")
    assert policy.allows("MY_SERVER_API_KEY", here)
    assert not policy.allows("MY_SERVER_API_KEY", endpoint_of("http://127.0.0.1:8001/v1"))
    assert policy.allows("LAB_TOKEN", endpoint_of("https://anywhere.example"))
    assert policy.allows("EXTRA_TOKEN", endpoint_of("http://h:5"))
    assert KeyPolicy.load(tmp_path / "missing").grants == ()


@pytest.mark.parametrize(
    "text", ['PATH = ["h"]', "MY_API_KEY = 5", "MY_API_KEY = [", 'MY_API_KEY = ["a/b"]']
)
def test_bad_keys_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "keys.toml").write_text(text)
    with pytest.raises(KeyPolicyError):
        KeyPolicy.load(tmp_path)


def test_normalised_api_base_drops_case_default_port_slash_and_password() -> None:
    same = {
        normalise_api_base("HTTP://User:pw@LocalHost:80/v1/"),
        normalise_api_base("http://localhost/v1"),
    }
    assert same == {"http://localhost/v1"}
    assert normalise_api_base("http://localhost:8000/v1") == "http://localhost:8000/v1"


def test_literal_api_key_and_redirecting_options_are_refused_in_specs() -> None:
    for name, value in [
        ("api_key", "k"),
        ("api_key_env", "PATH"),
        ("base_url", "http://x"),
        ("extra_headers", "x"),
        ("aws_secret_access_key", "x"),
        ("api_base", "ftp://x"),
    ]:
        spec = ModelSpec(alias="m", model="openai/x", options=(Param(name=name, value=value),))
        with pytest.raises(ArchonError):
            options_from_spec(spec)


def test_litellm_gets_a_placeholder_key_for_a_foreign_api_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    options = {
        "openai/x": ModelOptions(
            api_base="http://127.0.0.1:9/v1", extra=(("base_url", "http://evil"), ("top_k", 3))
        )
    }
    request = CompletionRequest(model="openai/x", messages=(Message(role="user", content="q"),))
    kwargs = LiteLLMClient(options).kwargs(request)
    assert kwargs["api_key"] == NO_KEY  # litellm would fill in OPENAI_API_KEY otherwise
    assert "base_url" not in kwargs and kwargs["top_k"] == 3
    granted = LiteLLMClient(
        {
            "openai/x": ModelOptions(
                api_base="http://127.0.0.1:9/v1", api_key_env="MY_SERVER_API_KEY"
            )
        },
        keys=KeyPolicy.from_strings(["MY_SERVER_API_KEY@127.0.0.1:9"]),
    )
    monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
    assert granted.kwargs(request)["api_key"] == SERVER_KEY


# --- a loopback server records what arrives ------------------------------------------------


def _ask(client: OpenAICompatClient | RouterClient, model: str = "openai/x") -> str:
    async def go() -> str:
        try:
            request = CompletionRequest(model=model, messages=(Message(role="user", content="q"),))
            response = await client.complete(request)
            return response.completions[0].text
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_the_openai_key_is_not_sent_to_a_foreign_api_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with serve() as server:
        client = OpenAICompatClient({"openai/x": ModelOptions(api_base=server.base)})
        assert _ask(client) == server.text
    assert server.authorizations == [None]


def test_path_as_api_key_env_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve() as server:
        options = {"openai/x": ModelOptions(api_base=server.base, api_key_env="PATH")}
        policy = KeyPolicy.from_strings([f"MY_SERVER_API_KEY@127.0.0.1:{server.port}"])
        _ask(OpenAICompatClient(options, keys=policy))
    assert server.authorizations == [None]


def test_an_unconfirmed_variable_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
    with serve() as server:
        options = {"openai/x": ModelOptions(api_base=server.base, api_key_env="MY_SERVER_API_KEY")}
        router = RouterClient(options)
        assert any("--allow-key MY_SERVER_API_KEY@127.0.0.1" in w for w in router.key_warnings())
        _ask(router)
    assert server.authorizations == [None]


def test_a_confirmed_variable_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
    with serve() as server:
        options = {"openai/x": ModelOptions(api_base=server.base, api_key_env="MY_SERVER_API_KEY")}
        policy = KeyPolicy.from_strings([f"MY_SERVER_API_KEY@127.0.0.1:{server.port}"])
        router = RouterClient(options, keys=policy)
        assert router.key_warnings() == ()
        _ask(router)
    assert server.authorizations == [f"Bearer {SERVER_KEY}"]


def test_a_401_says_which_flag_would_send_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
    with serve(status=401, raw=b'{"error": "missing key"}') as server:
        options = {"openai/x": ModelOptions(api_base=server.base, api_key_env="MY_SERVER_API_KEY")}
        with pytest.raises(ModelCallError) as caught:
            _ask(OpenAICompatClient(options))
    message = str(caught.value)
    assert (
        "HTTP 401" in message
        and f"--allow-key MY_SERVER_API_KEY@127.0.0.1:{server.port}" in message
    )
    assert SERVER_KEY not in message


def test_redirects_are_not_followed_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", SERVER_KEY)
    with serve() as elsewhere, serve(redirect="") as server:
        server.redirect = elsewhere.base + "/chat/completions"
        options = {"openai/x": ModelOptions(api_base=server.base, api_key_env="MY_SERVER_API_KEY")}
        policy = KeyPolicy.from_strings([f"MY_SERVER_API_KEY@127.0.0.1:{server.port}"])
        with pytest.raises(ModelCallError, match="redirects are not followed"):
            _ask(OpenAICompatClient(options, keys=policy))
    assert server.authorizations == [f"Bearer {SERVER_KEY}"]
    assert elsewhere.seen == []
