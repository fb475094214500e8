"""/metrics is valid Prometheus text (checked by a strict parser of the 0.0.4 format)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import aiohttp
import openai
import pytest

from archon.ir import Budget
from archon.runtime.clients.fake import ScriptedClient
from archon.serve import ServerBudget
from archon.serve.metrics import Counter, GaugeFunc, Histogram, MetricsRegistry, format_value

from .conftest import run, serving, user

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{(?:{_LABEL})(?:,{_LABEL})*\}})? (\S+)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    name: str
    kind: str = ""
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def parse(text: str) -> dict[str, Family]:
    """Parse exposition text; raise AssertionError on anything malformed."""
    assert text.endswith("\n")
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name), line
            families.setdefault(name, Family(name)).help = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            family = families.setdefault(name, Family(name))
            assert not family.samples, f"TYPE after samples: {line}"
            family.kind = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"malformed sample line: {line!r}"
            name, labels, value = match.groups()
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            family = families.get(name) or families.get(base)
            assert family is not None and family.kind, f"sample without TYPE: {line}"
            number = float(value.replace("+Inf", "inf").replace("-Inf", "-inf"))
            pairs = dict(_LABEL_PAIR.findall(labels or ""))
            family.samples.append((name, pairs, number))
    for family in families.values():
        if family.kind == "histogram":
            _check_histogram(family)
        if family.kind == "counter":
            assert all(v >= 0 for _, _, v in family.samples), family.name
    return families


def _check_histogram(family: Family) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for name, labels, value in family.samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        if name.endswith("_bucket"):
            series.setdefault(key, []).append((float(labels["le"]), value))
        elif name.endswith("_count"):
            counts[key] = value
    for key, buckets in series.items():
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), family.name
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{family.name}: buckets not cumulative"
        assert values[-1] == counts[key], f"{family.name}: +Inf bucket != count"


def test_registry_renders_each_kind() -> None:
    registry = MetricsRegistry()
    counter = Counter("x_total", "X.", ("model",))
    hist = Histogram("lat_seconds", "Latency.", ("model",), (0.1, 1.0))
    registry.add(counter)
    registry.add(hist)
    registry.add(GaugeFunc("up", "Up.", lambda: [((), 1)]))
    counter.inc(('we"ird\\na\nme',), 2)
    hist.observe(("m",), 0.05)
    hist.observe(("m",), 5.0)
    families = parse(registry.render())
    assert families["x_total"].samples == [("x_total", {"model": 'we\\"ird\\\\na\\nme'}, 2.0)]
    buckets = [s for s in families["lat_seconds"].samples if s[0].endswith("_bucket")]
    assert [(s[1]["le"], s[2]) for s in buckets] == [("0.1", 1), ("1.0", 1), ("+Inf", 2)]
    assert families["up"].kind == "gauge"
    with pytest.raises(ValueError, match="twice"):
        registry.add(Counter("x_total", "again"))


def test_format_value() -> None:
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"


def test_metrics_endpoint_counts_requests_calls_tokens_and_budget() -> None:
    backend = ScriptedClient([(None, "ok")], latency_s=0.01)

    async def main() -> str:
        async with serving(backend, budget=ServerBudget(Budget(calls=100))) as s:
            for _ in range(2):
                await s.client.chat.completions.create(model="voted", messages=user("a"))
            with pytest.raises(openai.BadRequestError):
                await s.client.chat.completions.create(model="nope", messages=user("a"))
            async with aiohttp.ClientSession() as http, http.get(s.root + "/metrics") as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                return await reply.text()

    families = parse(run(main()))
    requests = {
        (labels["model"], labels["status"]): value
        for _, labels, value in families["archon_requests_total"].samples
    }
    assert requests == {("voted", "200"): 2, ("unknown", "400"): 1}
    calls = families["archon_model_calls_total"].samples
    assert calls == [("archon_model_calls_total", {"model": "openai/m"}, 6.0)]
    tokens = {s[1]["type"]: s[2] for s in families["archon_tokens_total"].samples}
    assert tokens["prompt"] > 0 and tokens["completion"] == 6
    remaining = families["archon_budget_remaining"].samples
    assert remaining == [("archon_budget_remaining", {"limit": "calls"}, 94.0)]
    latency = families["archon_request_duration_seconds"]
    assert latency.kind == "histogram"
    counts = {s[1]["model"]: s[2] for s in latency.samples if s[0].endswith("_count")}
    assert counts == {"voted": 2, "unknown": 1}
    in_flight = families["archon_requests_in_flight"].samples
    assert in_flight == [("archon_requests_in_flight", {}, 0.0)]
