"""docs/python-api.md's script on the embedded model: the public API builds the client the
CLI builds (``RunEnv.open``) and runs a pipeline offline (integration)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from archon.runtime.clients.local.models import pull

pytestmark = pytest.mark.integration
DOCS = Path(__file__).parents[2] / "docs" / "python-api.md"
LOCAL_BLOCKS = re.findall(r"```python local-model\n(.*?)```", DOCS.read_text("utf-8"), re.S)


def test_the_docs_show_a_local_model_script() -> None:
    assert len(LOCAL_BLOCKS) == 1
    assert "RunEnv.open" in LOCAL_BLOCKS[0]


def test_the_docs_script_runs_on_the_embedded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    home = tmp_path / "archon_home"
    pull("smollm2-135m", home, hub_timeout_s=3.0)
    monkeypatch.setenv("ARCHON_HOME", str(home))  # where RunEnv.open finds the model and cache
    exec(compile(LOCAL_BLOCKS[0], str(DOCS), "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.strip()  # the script printed the answer
    assert (home / "cache.sqlite").exists()  # the CLI's persistent cache, as `archon run` opens
