"""``archon serve examples/baseline.pipe`` on the embedded model (SmolLM2 via --model-path)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
from pathlib import Path

import openai
import pytest

from archon.runtime.clients.local import models as local_models
from archon.runtime.home import archon_home

from .conftest import KEY, ROOT, start_cli, user

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    home = archon_home()
    if local_models.is_installed(local_models.known_model(MODEL), home):
        return local_models.model_path(MODEL, home)
    return local_models.pull(MODEL, tmp_path_factory.mktemp("archon_home"), hub_timeout_s=3.0)


def test_baseline_is_served_on_the_embedded_model(gguf: Path, tmp_path: Path) -> None:
    async def main() -> tuple[str, str, int]:
        process, url = await start_cli(
            [str(ROOT / "examples" / "baseline.pipe"), "--model-path", str(gguf), "--no-cache"],
            home=tmp_path / "home",
        )
        client = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=300)
        try:
            question = user("What is the capital of France?")
            reply = await client.chat.completions.create(
                model="baseline", messages=question, max_tokens=16
            )
            stream = await client.chat.completions.create(
                model="baseline", messages=question, max_tokens=16, stream=True
            )
            pieces = [c.choices[0].delta.content async for c in stream if c.choices]
        finally:
            await client.close()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)
        assert reply.usage is not None and reply.usage.completion_tokens <= 16
        return reply.choices[0].message.content or "", "".join(p or "" for p in pieces), code

    answer, streamed, code = asyncio.run(main())
    assert answer.strip()
    assert streamed.strip()
    assert code == 0
