"""The call cache never answers for another model: endpoint, model file and backend are part
of the key; a broken cache file is moved aside, rebuilt, and the CLI can still inspect it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archon.cli import app
from archon.ir import Budget, Node, Param, Pipeline
from archon.layers.registry import Registry
from archon.runtime import CallCache, cache_key, run_sync
from archon.runtime.clients.base import ModelCallError, ModelOptions
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.router import RouterClient
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

from .fake_server import free_port, serve


def _pipeline(model: str) -> Pipeline:
    node = Node(
        id="gen",
        kind="generate",
        params=(Param(name="models", value=(model,)), Param(name="temperature", value=0.0)),
    )
    return Pipeline(name="p", nodes=(node,), output="gen", budget=Budget())


def _run(router: RouterClient, cache: CallCache, registry: Registry, model: str) -> tuple[str, int]:
    result = run_sync(_pipeline(model), "q", client=router, registry=registry, cache=cache)
    asyncio.run(router.aclose())
    return result.answer, result.cache_hits


def test_same_model_name_on_two_servers_never_shares_an_entry(
    tmp_path: Path, registry: Registry
) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    with serve(text="answer of A") as a, serve(text="answer of B") as b:
        first = RouterClient({"openai/m": ModelOptions(api_base=a.base)})
        assert _run(first, cache, registry, "openai/m") == ("answer of A", 0)
        again = RouterClient({"openai/m": ModelOptions(api_base=a.base + "/")})  # same endpoint
        assert _run(again, cache, registry, "openai/m") == ("answer of A", 1)
        other = RouterClient({"openai/m": ModelOptions(api_base=b.base)})
        assert _run(other, cache, registry, "openai/m") == ("answer of B", 0)
    assert len(a.seen) == 1 and len(b.seen) == 1


def test_a_closed_port_does_not_print_another_servers_answer(
    tmp_path: Path, registry: Registry
) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    with serve(text="cached elsewhere") as live:
        _run(
            RouterClient({"openai/m": ModelOptions(api_base=live.base)}),
            cache,
            registry,
            "openai/m",
        )
    closed = f"http://127.0.0.1:{free_port()}/v1"
    router = RouterClient({"openai/m": ModelOptions(api_base=closed)})
    from archon.runtime import Limits

    with pytest.raises(Exception) as caught:
        run_sync(
            _pipeline("openai/m"),
            "q",
            client=router,
            registry=registry,
            cache=cache,
            limits=Limits(retries=0),
        )
    assert "cached elsewhere" not in str(caught.value)


def _gguf(path: Path, body: bytes) -> Path:
    path.write_bytes(b"GGUF" + body)
    return path


def test_the_local_model_file_is_part_of_the_key(tmp_path: Path, registry: Registry) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    first, second = _gguf(tmp_path / "a.gguf", b"a" * 100), _gguf(tmp_path / "b.gguf", b"b" * 100)
    fake = ScriptedClient()

    def router(path: Path) -> RouterClient:
        return RouterClient(local=lambda: fake, local_paths={"*": path})

    _run(router(first), cache, registry, "local/m")
    assert _run(router(first), cache, registry, "local/m")[1] == 1
    assert _run(router(second), cache, registry, "local/m")[1] == 0
    assert fake.calls == 2


def test_a_non_model_file_does_not_answer_from_the_cache(
    tmp_path: Path, registry: Registry
) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    model = _gguf(tmp_path / "a.gguf", b"weights")
    _run(RouterClient(local=ScriptedClient, local_paths={"*": model}), cache, registry, "local/m")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    router = RouterClient(local=ScriptedClient, local_paths={"*": notes})
    with pytest.raises(Exception) as caught:
        run_sync(_pipeline("local/m"), "q", client=router, registry=registry, cache=cache)
    assert "not a GGUF model file" in str(caught.value)


def test_registry_models_are_keyed_by_their_sha256() -> None:
    router = RouterClient(local=ScriptedClient)
    scope = asyncio.run(router.cache_scope("local/qwen2.5-coder-0.5b"))
    assert "sha256:" in scope and "llama-cpp-python/" in scope


def test_the_backend_version_is_part_of_the_scope() -> None:
    router = RouterClient({"anthropic/x": ModelOptions(extra=(("top_k", 3),))})
    scope = asyncio.run(router.cache_scope("anthropic/x"))
    assert scope.startswith("litellm/") and "top_k=3" in scope
    compat = RouterClient({"openai/x": ModelOptions(api_base="http://h:1/v1")})
    assert asyncio.run(compat.cache_scope("openai/x")) == "openai-compat/1 http://h:1/v1"


def test_scope_changes_the_key() -> None:
    request = CompletionRequest(model="m", messages=(Message(role="user", content="q"),))
    assert cache_key(request, 0, 0, "a") != cache_key(request, 0, 0, "b")


# --- broken files ---------------------------------------------------------------------------

_RESPONSE = CompletionResponse(completions=(Completion(text="x"),), usage=Usage(calls=1))


def _broken_files(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00\xffnot sqlite at all" * 64)
    truncated = tmp_path / "truncated.sqlite"
    healthy = CallCache(truncated)
    for i in range(200):
        healthy.put(f"k{i}", "m", _RESPONSE)
    healthy.close()
    truncated.write_bytes(truncated.read_bytes()[:1500])
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE trials (id INTEGER)")
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as conn:
        conn.execute(
            "CREATE TABLE calls (key TEXT PRIMARY KEY, model TEXT, response TEXT, created REAL)"
        )
    return {"garbage": garbage, "truncated": truncated, "foreign": foreign, "old": old}


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign", "old"])
def test_a_broken_cache_file_is_moved_aside_and_rebuilt(tmp_path: Path, kind: str) -> None:
    path = _broken_files(tmp_path)[kind]
    original = path.read_bytes()
    cache = CallCache(path)
    warnings = cache.open()
    assert len(warnings) == 1 and "moved it to" in warnings[0]
    aside = list(tmp_path.glob(f"{path.name}.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == original  # nothing is lost
    cache.put("k", "m", _RESPONSE)
    assert cache.get("k") is not None and cache.stats().entries == 1
    cache.close()
    assert CallCache(path).open() == ()  # the new file is healthy


def test_a_healthy_cache_is_left_alone(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    cache.put("k", "m", _RESPONSE)
    cache.close()
    again = CallCache(tmp_path / "c.sqlite")
    assert again.open() == () and again.get("k") is not None
    assert not list(tmp_path.glob("*.broken-*"))


def test_a_stale_journal_moves_aside_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"garbage" * 10)
    Path(f"{path}-wal").write_bytes(b"old journal")
    CallCache(path).open()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").read_bytes() != b"old journal"
    assert any(p.name.endswith("-wal") for p in tmp_path.glob("c.sqlite.broken-*"))


def test_an_unwritable_cache_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception) as caught:
        CallCache(blocker / "sub" / "c.sqlite").open()
    assert type(caught.value).__name__ == "CacheError"


@pytest.mark.parametrize(
    "command", [["cache", "stats"], ["cache", "stats", "--json"], ["cache", "clear"]]
)
def test_cache_commands_work_on_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path))
    (tmp_path / "cache.sqlite").write_bytes(b"\x89PNG garbage" * 100)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "moved it to" in result.stderr
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0 and "moved it to" not in again.stderr


def test_run_with_a_broken_cache_warns_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "cache.sqlite").write_bytes(b"garbage" * 100)
    with serve(text="fresh answer") as server:
        pipe = tmp_path / "p.pipe"
        pipe.write_text(
            f'models {{ m = model("openai/m", api_base = "{server.base}") }}\n'
            "pipeline p { generate(models = [m], max_tokens = 8) }\n"
        )
        first = CliRunner().invoke(app, ["run", str(pipe), "-q", "hi"])
        second = CliRunner().invoke(app, ["run", str(pipe), "-q", "hi", "--json"])
    assert first.exit_code == 0 and "fresh answer" in first.stdout
    assert "moved it to" in first.stderr
    assert second.exit_code == 0 and '"cache_hits": 1' in second.stdout
    assert len(server.seen) == 1


def test_a_failing_cache_mid_run_is_disabled_not_fatal(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    cache.open()
    assert cache._conn is not None
    cache._conn.close()  # simulate the file failing under a running process
    assert cache.get("k") is None
    cache.put("k", "m", _RESPONSE)
    assert any("not using it" in w for w in cache.warnings)


def test_unreadable_entries_are_misses(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c.sqlite")
    cache.open()
    assert cache._conn is not None
    cache._conn.execute("INSERT INTO calls VALUES ('k', 'm', 'not json', 0, NULL, NULL)")
    assert cache.get("k") is None


def test_model_call_error_is_raised_for_an_unreadable_model_path(tmp_path: Path) -> None:
    router = RouterClient(local=ScriptedClient, local_paths={"*": tmp_path / "missing.gguf"})
    with pytest.raises(ModelCallError):
        asyncio.run(router.cache_scope("local/m"))
