"""Process scorers: the HTTP PRM protocol against a fake PRM server on 127.0.0.1, and the
step protocol's reading of replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from archon.errors import ArchonError
from archon.layers._steps import Partial, StepSearchParams, extend
from archon.layers.beam_search import BeamSearch, BeamSearchParams
from archon.layers.particle_filter import ParticleFilter, ParticleFilterParams
from archon.runtime import RunResult
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Candidates, Completion, CompletionRequest

from .step_script import run_layer

Scoring = Callable[[dict[str, Any]], tuple[int, object]]


class FakePrm:
    """A PRM server: scores each step 0.9 when it says "good", else 0.2."""

    def __init__(self, scoring: Scoring | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.scoring = scoring or self.good_steps
        prm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                prm.bodies.append(body)
                status, reply = prm.scoring(body)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/score"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def good_steps(body: dict[str, Any]) -> tuple[int, object]:
        return 200, {"scores": [0.9 if "good" in step else 0.2 for step in body["steps"]]}


@pytest.fixture
def prm() -> Iterator[FakePrm]:
    server = FakePrm()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(timeout=5)


def _reply(request: CompletionRequest) -> str:
    seed = request.seed or 0
    if (request.assistant_prefix or "").count("\n\n") >= 1:
        return "The answer is 42."
    return f"A {'good' if seed % 3 == 0 else 'weak'} step {'abcdefgh'[seed % 8]}."


def _run(params: StepSearchParams, client: ScriptedClient, retries: int = 0) -> RunResult:
    layer = ParticleFilter if isinstance(params, ParticleFilterParams) else BeamSearch
    return run_layer(layer, params, client, retries=retries, query="What is 6 times 7?")


def test_prm_scores_steps_over_http(prm: FakePrm) -> None:
    params = BeamSearchParams(model="m", beam_width=2, expansions=4, scorer="prm", prm_url=prm.url)
    client = ScriptedClient(_reply)
    result = _run(params, client)
    assert prm.bodies, "the PRM was never called"
    assert all(body["question"] == "What is 6 times 7?" for body in prm.bodies)
    assert {len(body["steps"]) for body in prm.bodies} == {1, 2}
    assert client.calls == result.usage.calls == 16  # PRM calls are not model calls
    assert isinstance(result.output, Candidates)
    assert all(c.text.startswith("A good step") for c in result.output.items)
    assert not result.warnings


def test_prm_drives_particle_filter_weights(prm: FakePrm) -> None:
    params = ParticleFilterParams(
        model="m", particles=6, max_steps=3, scorer="prm", prm_url=prm.url, aggregate="min"
    )
    result = _run(params, ScriptedClient(_reply))
    assert isinstance(result.output, Candidates)
    assert result.output.items[0].score == pytest.approx(0.2)  # min over steps, last is "weak"
    good = sum(c.text.startswith("A good") for c in result.output.items)
    assert good >= 4  # 2 of 6 good first steps, odds 9 vs 0.25: resampled into most slots


def test_malformed_prm_replies_score_neutral_with_a_warning(prm: FakePrm) -> None:
    prm.scoring = lambda body: (200, {"scores": [2.0] * len(body["steps"])})
    params = BeamSearchParams(model="m", beam_width=2, expansions=2, scorer="prm", prm_url=prm.url)
    result = _run(params, ScriptedClient(_reply))
    assert isinstance(result.output, Candidates)
    assert all(c.score == 0.5 for c in result.output.items)
    assert any("one number in [0, 1] per step" in w for w in result.warnings)


def test_prm_http_errors_fail_the_node_with_the_url(prm: FakePrm) -> None:
    prm.scoring = lambda body: (503, "overloaded")
    params = BeamSearchParams(model="m", beam_width=1, expansions=1, scorer="prm", prm_url=prm.url)
    with pytest.raises(ArchonError, match=r"127\.0\.0\.1.*HTTP 503"):
        _run(params, ScriptedClient(_reply), retries=1)
    assert len(prm.bodies) == 2  # retried once (503 is retryable)


def test_prm_that_is_not_json_is_not_retried(prm: FakePrm) -> None:
    prm.scoring = lambda body: (200, "<html>")
    params = BeamSearchParams(model="m", beam_width=1, expansions=1, scorer="prm", prm_url=prm.url)
    with pytest.raises(ArchonError, match="not JSON"):
        _run(params, ScriptedClient(_reply), retries=2)
    assert len(prm.bodies) == 1


PARAMS = StepSearchParams(model="m", max_steps=3)


@pytest.mark.parametrize(
    ("text", "finish", "steps", "reason"),
    [
        ("First step.\n\nSecond step.", "stop", ("First step.",), ""),
        ("  First step.  ", "stop", ("First step.",), ""),
        ("", "stop", (), "end"),
        ("\n", "stop", (), "end"),
        ("So \\boxed{7}", "stop", ("So \\boxed{7}",), "answer"),
        ("The answer is 7.", "stop", ("The answer is 7.",), "answer"),
        ("Thus:\nAnswer: 7", "stop", ("Thus:\nAnswer: 7",), "answer"),
        ("A long step that was cut", "length", ("A long step that was cut",), ""),
    ],
)
def test_extend_reads_one_step(text: str, finish: str, steps: tuple[str, ...], reason: str) -> None:
    child = extend(Partial(), Completion(text=text, finish_reason=finish), PARAMS)
    assert child.steps == steps and child.reason == reason


def test_extend_completes_at_max_steps_and_keeps_the_logprob() -> None:
    partial = Partial(steps=("a", "b"), scores=(0.5, 0.5), logprobs=(None, None))
    child = extend(partial, Completion(text="c", logprob=-0.2), PARAMS)
    assert child.steps == ("a", "b", "c") and child.reason == "max_steps"
    assert child.logprobs[-1] == -0.2
    assert partial.prefix("\n\n") == "a\n\nb\n\n" and Partial().prefix("\n\n") is None


def test_aggregates() -> None:
    partial = Partial(steps=("a", "b", "c"), scores=(0.9, 0.5, 0.8))
    assert partial.score("last") == 0.8
    assert partial.score("min") == 0.5
    assert partial.score("prod") == pytest.approx(0.36)
    assert partial.score("mean") == pytest.approx(2.2 / 3)
    assert Partial().score("last") == 0.0
