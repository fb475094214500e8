"""The router's route table: a new backend is one ``Route`` entry, tried before the defaults."""

from __future__ import annotations

import asyncio

import pytest

from archon.runtime.clients.base import ModelCallError, ModelClient, ModelOptions
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.keys import KeyPolicy
from archon.runtime.clients.router import DEFAULT_ROUTES, Route, RouteContext, RouterClient
from archon.values import CompletionRequest, Message


def _request(model: str) -> CompletionRequest:
    return CompletionRequest(model=model, messages=(Message(role="user", content="hi"),))


@pytest.mark.parametrize(
    ("model", "options", "route"),
    [
        ("local/qwen", None, "local"),
        ("local/qwen", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "local"),
        ("openai/served", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "openai_compat"),
        ("openai/served", ModelOptions(), "litellm"),
        ("openai/gpt-4o-mini", None, "litellm"),
        ("hosted_vllm/m", ModelOptions(api_base="http://127.0.0.1:8000/v1"), "litellm"),
    ],
)
def test_the_default_table_routes_as_before(
    model: str, options: ModelOptions | None, route: str
) -> None:
    router = RouterClient({model: options} if options is not None else None)
    assert router.route_for(model).name == route
    assert router.routes == DEFAULT_ROUTES


def test_an_added_route_serves_its_prefix_with_the_routers_configuration() -> None:
    seen: list[RouteContext] = []

    def build(ctx: RouteContext) -> ModelClient:
        seen.append(ctx)
        return ScriptedClient(lambda r: "mine")

    keys = KeyPolicy()
    options = {"mine/a": ModelOptions(api_base="http://h:1/v1")}
    router = RouterClient(options, keys=keys, routes=[Route("mine", "mine/", build)])
    answer = asyncio.run(router.complete(_request("mine/a")))
    assert answer.completions[0].text == "mine"
    assert router.client_for("mine/b") is router.client_for("mine/a")  # one backend per route
    assert len(seen) == 1
    assert seen[0].keys is keys and seen[0].options == options
    assert router.route_for("openai/x").name == "litellm"  # the defaults still follow


def test_a_predicate_route_sees_the_models_options_and_comes_first() -> None:
    def served(model: str, options: ModelOptions | None) -> bool:
        return options is not None and options.api_base == "http://special:1/v1"

    route = Route("special", served, lambda ctx: ScriptedClient(lambda r: "special"))
    options = {
        "local/q": ModelOptions(api_base="http://special:1/v1"),
        "local/r": ModelOptions(),
    }
    router = RouterClient(options, routes=(route,))
    assert router.route_for("local/q").name == "special"
    assert router.route_for("local/r").name == "local"


def test_a_route_named_like_a_default_replaces_it() -> None:
    only_x = Route("litellm", "x/", lambda ctx: ScriptedClient(lambda r: "x"))
    router = RouterClient(routes=[only_x])
    assert [r.name for r in router.routes] == ["litellm", "local", "openai_compat"]
    assert router.route_for("x/m") is only_x
    with pytest.raises(ModelCallError, match="no client serves model 'anthropic/c'"):
        router.client_for("anthropic/c")


def test_local_and_remote_factories_replace_the_default_backends() -> None:
    local, remote = ScriptedClient(lambda r: "l"), ScriptedClient(lambda r: "r")
    router = RouterClient(local=lambda: local, remote=lambda: remote)
    assert router.client_for("local/q") is local
    assert router.client_for("anthropic/c") is remote


def test_two_added_routes_may_not_share_a_name() -> None:
    route = Route("mine", "mine/", lambda ctx: ScriptedClient())
    with pytest.raises(ValueError, match="share a name"):
        RouterClient(routes=[route, route])


def test_aclose_closes_every_created_backend_and_a_later_call_builds_a_new_one() -> None:
    closed: list[str] = []

    class Closing(ScriptedClient):
        async def aclose(self) -> None:
            closed.append("mine")

    router = RouterClient(routes=[Route("mine", "mine/", lambda ctx: Closing())])
    first = router.client_for("mine/a")
    asyncio.run(router.aclose())
    assert closed == ["mine"]
    assert router.client_for("mine/a") is not first
