"""Bad inputs to run / eval / search / import-archon end with a clear error and an exit code,
never a traceback, and paths are checked before any model is called."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
from archon.cli import app
from archon.ir import Pipeline
from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.fake import ScriptedClient
from archon.runtime.clients.litellm import LiteLLMClient
from archon.runtime.clients.openai_compat import HttpTimeouts
from archon.values import CompletionRequest, Message

from .fake_server import free_port, serve

LOCAL_PIPE = 'models { m = "fake/m" }\npipeline p { generate(models = [m], max_tokens = 8) }\n'
SEARCH_PIPE = (
    'models { m = "fake/m" }\n'
    "pipeline p { generate(models = [m], samples = int(1, 3), max_tokens = 8) }\n"
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def clean(result: Result, code: int) -> Result:
    """The exit code is ``code`` and nothing escaped as a Python exception."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def server_pipe(tmp_path: Path, base: str, extra: str = "") -> Path:
    return write(
        tmp_path,
        "server.pipe",
        f'models {{ m = model("openai/m", api_base = "{base}"{extra}) }}\n'
        "pipeline p { generate(models = [m], max_tokens = 8) }\n",
    )


# --- files that are not what they should be -------------------------------------------------

BINARY = bytes(range(256)) * 4
LATIN1 = 'pipeline p { generate(models = ["caf\xe9"]) }\n'.encode("latin-1")
DEEP_JSON = "[" * 100_000 + "]" * 100_000


def test_non_utf8_pipe_is_a_diagnostic(tmp_path: Path) -> None:
    result = clean(invoke("run", str(write(tmp_path, "p.pipe", LATIN1)), "-q", "hi"), 1)
    assert "E100" in result.stderr


@pytest.mark.parametrize("content", [BINARY, LATIN1, DEEP_JSON, '{"a": ', "", "[1, 2]"], ids=repr)
def test_bad_params_files(tmp_path: Path, content: str | bytes) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    params = write(tmp_path, "params.json", content)
    clean(invoke("run", str(pipe), "-q", "hi", "--params", str(params), "--dry-run"), 2)


@pytest.mark.parametrize("content", [BINARY, b"", b"\n\n  \n", DEEP_JSON, b'{"query": ['])
def test_bad_input_files(tmp_path: Path, content: str | bytes) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    queries = write(tmp_path, "q.jsonl", content)
    result = clean(invoke("run", str(pipe), "--input", str(queries)), 2)
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize("content", [BINARY, LATIN1, DEEP_JSON.encode(), b'{"question": "a"'])
def test_bad_dataset_files(tmp_path: Path, content: bytes) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    data = write(tmp_path, "d.jsonl", content)
    clean(invoke("eval", str(pipe), "-d", str(data), "--no-cache"), 2)


@pytest.mark.parametrize("content", [BINARY, LATIN1, DEEP_JSON, "{"])
def test_bad_archon_configs(tmp_path: Path, content: str | bytes) -> None:
    clean(invoke("import-archon", str(write(tmp_path, "c.json", content))), 2)


def test_a_literal_api_key_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    pipe = server_pipe(tmp_path, "http://127.0.0.1:9/v1", ', api_key = "do-not-write-me"')
    for command in (["run", str(pipe), "-q", "hi"], ["check", str(pipe)]):
        result = clean(invoke(*command), 1)
        assert "E316" in result.stderr and "^" in result.stderr


def test_credentials_in_api_base_are_refused(tmp_path: Path) -> None:
    pipe = server_pipe(tmp_path, "http://user:s3cret@127.0.0.1:9/v1", "")
    for command in (["run", str(pipe), "-q", "hi"], ["check", str(pipe)]):
        result = clean(invoke(*command), 1)
        assert "E316" in result.stderr and "credentials" in result.stderr


def test_api_key_env_path_is_a_diagnostic(tmp_path: Path) -> None:
    pipe = server_pipe(tmp_path, "http://127.0.0.1:9/v1", ', api_key_env = "PATH"')
    assert "E317" in clean(invoke("check", str(pipe)), 1).stderr


def test_a_non_model_file_as_model_path(tmp_path: Path) -> None:
    pipe = write(tmp_path, "p.pipe", 'pipeline p { generate(models = ["local/m"]) }\n')
    notes = write(tmp_path, "notes.txt", "hello")
    result = clean(invoke("run", str(pipe), "-q", "hi", "--model-path", str(notes)), 2)
    assert "not a GGUF model file" in result.stderr


@pytest.mark.parametrize("grant", ["PATH", "HOME@host", "MY_API_KEY@a/b", "MY_API_KEY@:x"])
def test_bad_allow_key_values(tmp_path: Path, grant: str) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    clean(invoke("run", str(pipe), "-q", "hi", "--allow-key", grant), 2)


# --- outputs and numbers are checked before any model call ---------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[ScriptedClient]:
    made: list[ScriptedClient] = []

    def fake(pipeline: Pipeline, *_: object) -> ScriptedClient:
        made.append(ScriptedClient())
        return made[-1]

    monkeypatch.setattr(eval_cmds, "make_client", fake)
    return made


@pytest.mark.parametrize("flag", ["--out", "--records"])
def test_eval_output_paths_are_checked_first(
    tmp_path: Path, calls: list[ScriptedClient], flag: str
) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    blocker = write(tmp_path, "file", "x")
    for target in (tmp_path, blocker / "under" / "x.json"):
        args = ("eval", str(pipe), "-d", "bigbench/arithmetic", "--limit", "2", "--no-cache")
        result = clean(invoke(*args, flag, str(target)), 2)
        assert flag in result.stderr
    assert calls == []  # no client was even built


def test_eval_out_is_written_after_a_good_run(tmp_path: Path, calls: list[ScriptedClient]) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    out = tmp_path / "deep" / "r.json"
    args = ("eval", str(pipe), "-d", "bigbench/arithmetic", "--limit", "2", "--no-cache")
    clean(invoke(*args, "--out", str(out)), 0)
    assert json.loads(out.read_text())["done"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("--limit", "-3"),
        ("--max-calls", "-1"),
        ("--max-calls", "0"),
        ("--max-usd", "-0.5"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--retries", "-1"),
    ],
)
def test_eval_rejects_bad_numbers(
    tmp_path: Path, calls: list[ScriptedClient], args: tuple[str, str]
) -> None:
    pipe = write(tmp_path, "p.pipe", LOCAL_PIPE)
    clean(invoke("eval", str(pipe), "-d", "bigbench/arithmetic", "--no-cache", *args), 2)
    assert calls == []


@pytest.mark.parametrize(
    "args",
    [
        ("--limit", "-3"),
        ("--limit", "0"),
        ("--trials", "0"),
        ("--budget-calls", "-5"),
        ("--budget-usd", "-1"),
        ("--budget-seconds", "0"),
        ("--parallel-trials", "0"),
        ("--top", "-1"),
        ("--storage", "garbage"),
        ("--storage", "journal:"),
        ("--storage", "sqlite:relative.db"),
        ("--storage", "postgresql://[::1"),
    ],
)
def test_search_rejects_bad_settings(tmp_path: Path, args: tuple[str, str]) -> None:
    pipe = write(tmp_path, "s.pipe", SEARCH_PIPE)
    clean(
        invoke("search", str(pipe), "--dataset", "bigbench/arithmetic", "--simulate", "1", *args), 2
    )


def test_unreachable_postgres_is_a_clean_error_without_the_password(tmp_path: Path) -> None:
    pipe = write(tmp_path, "s.pipe", SEARCH_PIPE)
    url = f"postgresql://archon:hunter2secret@127.0.0.1:{free_port()}/db"
    started = time.monotonic()
    result = invoke(
        "search", str(pipe), "--dataset", "bigbench/arithmetic", "--simulate", "1",
        "--storage", url, "--trials", "2", "--no-plots",
    )  # fmt: skip
    assert result.exit_code in (2, 3), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "hunter2secret" not in result.output
    assert "cannot open the study storage" in result.output
    assert time.monotonic() - started < 60


def test_search_report_with_garbage_storage(tmp_path: Path) -> None:
    clean(invoke("search-report", "--storage", "not a url"), 2)


# --- model servers that misbehave -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"<html>502 bad gateway</html>", "invalid JSON"),
        (b"{}", "no 'choices'"),
        (b'{"choices": []}', "'choices' is empty"),
        (b"[1, 2]", "a JSON list"),
        (b'{"choices": [{"message": {"content": 5}}]}', "not text"),
        (b"", "an empty body"),
    ],
)
def test_malformed_replies_say_what_the_server_sent(tmp_path: Path, raw: bytes, shown: str) -> None:
    with serve(raw=raw) as server:
        pipe = server_pipe(tmp_path, server.base)
        result = clean(invoke("run", str(pipe), "-q", "hi", "--no-cache", "--retries", "0"), 3)
    assert "did not send a chat completion" in result.stderr and shown in result.stderr


def test_secrets_in_a_bad_reply_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", "super-secret-value-123")
    with serve(raw=b"oops super-secret-value-123 Bearer abcdefghijkl") as server:
        pipe = server_pipe(tmp_path, server.base)
        result = clean(invoke("run", str(pipe), "-q", "hi", "--no-cache", "--retries", "0"), 3)
    assert "super-secret-value-123" not in result.output and "abcdefghijkl" not in result.output


def test_a_hanging_server_fails_within_the_timeout(tmp_path: Path) -> None:
    with serve(hang_s=30) as server:
        pipe = server_pipe(tmp_path, server.base)
        started = time.monotonic()
        result = clean(
            invoke("run", str(pipe), "-q", "hi", "--no-cache", "--timeout", "1", "--retries", "1"),
            3,
        )
        elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    assert len(server.seen) == 2  # one retry
    assert "error:" in result.stderr


def test_first_byte_timeout_is_shorter_than_the_total() -> None:
    timeouts = HttpTimeouts.for_total(60)
    assert timeouts.connect_s == 10 and timeouts.first_byte_s == 50
    small = HttpTimeouts.for_total(2)
    assert small.connect_s == 0.5 and small.first_byte_s == 1.5
    client_timeout = small.client_timeout()
    assert client_timeout.sock_connect == 0.5 and client_timeout.sock_read == 1.5


def test_an_unconfirmed_key_is_reported_and_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", "server-key-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-0123456789abcdef")
    with serve() as server:
        pipe = server_pipe(tmp_path, server.base, ', api_key_env = "MY_SERVER_API_KEY"')
        refused = clean(invoke("run", str(pipe), "-q", "hi", "--no-cache"), 0)
        grant = f"MY_SERVER_API_KEY@127.0.0.1:{server.port}"
        clean(invoke("run", str(pipe), "-q", "hi", "--no-cache", "--allow-key", grant), 0)
    assert f"--allow-key {grant}" in refused.stderr
    assert server.authorizations == [None, "Bearer server-key-0123456789"]


def test_keys_toml_confirms_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", "server-key-0123456789")
    with serve() as server:
        home.mkdir(parents=True, exist_ok=True)
        (home / "keys.toml").write_text(f'MY_SERVER_API_KEY = ["127.0.0.1:{server.port}"]\n')
        pipe = server_pipe(tmp_path, server.base, ', api_key_env = "MY_SERVER_API_KEY"')
        clean(invoke("run", str(pipe), "-q", "hi", "--no-cache"), 0)
    assert server.authorizations == ["Bearer server-key-0123456789"]


def test_litellm_reply_without_choices_is_a_model_call_error() -> None:
    class Reply:
        choices = ()

    client = LiteLLMClient()
    request = CompletionRequest(model="openai/x", messages=(Message(role="user", content="q"),))
    with pytest.raises(ModelCallError, match="did not send a chat completion"):
        client._response(None, request, Reply())  # type: ignore[arg-type]
