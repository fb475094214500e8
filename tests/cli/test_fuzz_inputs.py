"""Fuzzing the CLI's file inputs: ``.pipe`` files, ``--params`` JSON, ``--input`` queries,
dataset files (JSONL) and Archon JSON configs, as random bytes, truncated valid files, huge
files and deeply nested ones. Whatever the bytes, the CLI ends with an exit code in
{0, 1, 2, 3} and no Python traceback.

The CLI runs in-process (typer's CliRunner); model clients are replaced by the offline
ScriptedClient, so a file that happens to be valid costs no network call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
import archon.cli.runtime_cmds as runtime_cmds
from archon.cli import app
from archon.ir import Pipeline
from archon.runtime.clients.fake import ScriptedClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
EXIT_CODES = {0, 1, 2, 3}
PIPE = 'models { m = "fake/m" }\npipeline p { generate(models = [m], samples = int(1, 2)) }\n'


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An archon home in ``tmp_path`` and offline model clients."""
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))

    def offline(pipeline: Pipeline, *_: object) -> ScriptedClient:
        return ScriptedClient()

    monkeypatch.setattr(eval_cmds, "make_client", offline)
    monkeypatch.setattr(runtime_cmds, "make_client", offline)
    (tmp_path / "p.pipe").write_text(PIPE)
    yield tmp_path


def _check(result: Result) -> None:
    assert result.exit_code in EXIT_CODES, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


def _invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    _check(result)
    return result


# --- what the files hold ---------------------------------------------------------------------


def _valid_pipes() -> list[bytes]:
    return [path.read_bytes() for path in sorted(EXAMPLES.glob("*.pipe"))] + [PIPE.encode()]


def _valid_json() -> list[bytes]:
    archon_config = {
        "name": "cfg",
        "layers": [
            [{"type": "generator", "model": "gpt-4o", "model_type": "OpenAI_API", "samples": 3}],
            [{"type": "ranker", "model": "gpt-4o", "model_type": "OpenAI_API", "top_k": 2}],
            [{"type": "fuser", "model": "gpt-4o", "model_type": "OpenAI_API", "samples": 1}],
        ],
    }
    params = {"params": {"generate_1.samples": 2}}
    return [json.dumps(archon_config).encode(), json.dumps(params).encode()]


def _valid_jsonl() -> list[bytes]:
    return [
        (EXAMPLES / "data" / "custom" / "qa.jsonl").read_bytes(),
        b'"What is 2+2?"\n{"query": "hi"}\n{"messages": [{"role": "user", "content": "x"}]}\n',
    ]


def _truncated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(st.sampled_from(valid), st.floats(0, 1)).map(
        lambda pair: pair[0][: int(len(pair[0]) * pair[1])]
    )


def _mutated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """A valid file with a few bytes overwritten (structure mostly intact)."""

    def mutate(data: bytes, edits: list[tuple[float, int]]) -> bytes:
        out = bytearray(data)
        for where, byte in edits:
            if out:
                out[int(where * (len(out) - 1))] = byte
        return bytes(out)

    edits = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=4)
    return st.builds(mutate, st.sampled_from(valid), edits)


def _nested_json(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a": ' * depth + b"1" + b"}" * depth
    return b'{"question": ' + b"[" * depth + b"]" * depth + b', "answer": "x"}\n'


def _nested_pipe(depth: int, kind: str) -> bytes:
    gen = 'generate(models = ["fake/m"])'
    if kind == "repeat":
        text = "pipeline p {\n" + "repeat 1 {\n" * depth + gen + "\n" + "}\n" * depth + "}\n"
    elif kind == "list":
        text = "pipeline p { generate(models = " + "[" * depth + '"m"' + "]" * depth + ") }\n"
    else:
        text = "pipeline p { generate(samples = " + "choice(" * depth + "1" + ")" * depth + ") }\n"
    return text.encode()


def files(valid: list[bytes], nested: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=300).map(str.encode),
        _truncated(valid),
        _mutated(valid),
        nested,
    )


pipe_files = files(
    _valid_pipes(),
    st.builds(_nested_pipe, st.integers(1, 3000), st.sampled_from(["repeat", "list", "call"])),
)
json_files = files(
    _valid_json(),
    st.builds(_nested_json, st.integers(1, 200_000), st.sampled_from(["list", "object"])),
)
jsonl_files = files(
    _valid_jsonl(),
    st.builds(_nested_json, st.integers(1, 200_000), st.just("record")),
)


# --- the properties ---------------------------------------------------------------------------


@SETTINGS
@given(data=pipe_files)
def test_pipe_files(workdir: Path, data: bytes) -> None:
    path = workdir / "fuzz.pipe"
    path.write_bytes(data)
    _invoke("check", path)
    _invoke("fmt", "--stdout", path)
    _invoke("run", path, "--dry-run", "-q", "hi")
    _invoke("graph", path, "--format", "json")


@SETTINGS
@given(data=json_files)
def test_params_files(workdir: Path, data: bytes) -> None:
    path = workdir / "params.json"
    path.write_bytes(data)
    _invoke("run", workdir / "p.pipe", "--dry-run", "-q", "hi", "--params", path)
    _invoke("export-archon", workdir / "p.pipe", "--params", path)


@SETTINGS
@given(data=json_files)
def test_archon_configs(workdir: Path, data: bytes) -> None:
    path = workdir / "config.json"
    path.write_bytes(data)
    _invoke("import-archon", path)


@SETTINGS
@given(data=jsonl_files)
def test_dataset_files(workdir: Path, data: bytes) -> None:
    path = workdir / "data.jsonl"
    path.write_bytes(data)
    _invoke("eval", workdir / "p.pipe", "-d", path, "--no-cache", "--limit", "3")


@SETTINGS
@given(data=jsonl_files)
def test_query_files(workdir: Path, data: bytes) -> None:
    path = workdir / "queries.jsonl"
    path.write_bytes(data)
    _invoke("run", workdir / "p.pipe", "--input", path, "--no-cache")


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("huge.pipe", ("check",)),
        ("huge.pipe", ("fmt", "--stdout")),
        ("huge.json", ("import-archon",)),
    ],
)
def test_huge_files(workdir: Path, name: str, args: tuple[str, ...]) -> None:
    path = workdir / name
    with path.open("wb") as out:  # 30 MB of a valid-looking start, then filler
        out.write(b'prompts { p = """')
        out.write(b"x" * 30_000_000)
    result = _invoke(*args, path)
    assert result.exit_code in (1, 2)
    assert "too large" in result.stderr
