"""Simulated tasks whose quality is a known function of the architecture (tests, benchmarks).

Two simulators, for two kinds of test:

* :class:`Landscape` + :class:`SimulatedEvaluator`: an instant :class:`~archon.search.objective.
  Evaluator` whose accuracy is a seeded function of the chosen holes (each hole has a hidden
  best value; quality falls with the distance from it). No runtime, no model calls: it is how
  samplers are compared over many seeds.
* :func:`simulated_client` + :func:`arithmetic_items`: a
  :class:`~archon.runtime.clients.fake.ScriptedClient` answering arithmetic questions
  correctly with a probability that depends on the request (model, temperature), seeded per
  item and sample, so a real search through the runtime has something to find.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass

from archon.compiler.cost import estimate
from archon.compiler.structure import HoleRef, holes
from archon.eval.items import EvalItem
from archon.ir import Choice, FloatRange, IntRange, Pipeline, Value
from archon.layers.registry import Registry
from archon.runtime import BudgetExceeded, Meter, Reservation
from archon.runtime.clients.fake import ScriptedClient, last_user
from archon.search.objective import Progress
from archon.values import CompletionRequest, Usage


def _unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from ``parts``."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def chosen_params(template: Pipeline, concrete: Pipeline) -> dict[str, Value]:
    """The hole values a concrete pipeline of ``template`` took (active holes only)."""
    ids = {node.id for node in concrete.nodes}
    params: dict[str, Value] = {}
    counts: dict[str, int] = {}
    for node in template.nodes:
        for requirement in node.requires:
            counts.setdefault(requirement.switch, 0)
            if node.id in ids:
                counts[requirement.switch] = max(counts[requirement.switch], requirement.at_least)
    for ref in holes(template):
        if ref.kind == "optional":
            params[ref.name] = counts.get(ref.name, 0) >= 1
        elif ref.kind == "repeat":
            params[ref.name] = counts.get(ref.name, 0)
        else:
            node_id, _, name = ref.name.rpartition(".")
            if node_id in ids:
                param = concrete.node(node_id).param(name)
                if param is not None:
                    params[ref.name] = param.value  # type: ignore[assignment]
    return params


def _closeness(ref: HoleRef, value: Value, target: Value) -> float:
    hole = ref.hole
    if isinstance(hole, Choice):
        return 1.0 if value == target else 0.25
    assert isinstance(value, int | float) and isinstance(target, int | float)
    span = float(hole.high - hole.low)
    if span <= 0:
        return 1.0
    return max(0.0, 1.0 - abs(float(value) - float(target)) / span)


def _target(ref: HoleRef, rng: random.Random) -> Value:
    hole = ref.hole
    if isinstance(hole, Choice):
        return rng.choice(hole.options)
    if isinstance(hole, IntRange):
        return rng.choice(hole.values())
    assert isinstance(hole, FloatRange)
    if hole.step:
        steps = math.floor((hole.high - hole.low) / hole.step + 1e-9)
        return hole.low + rng.randint(0, steps) * hole.step
    return rng.uniform(hole.low, hole.high)


@dataclass(frozen=True)
class Landscape:
    """A seeded quality function over a template's holes.

    Every hole has a hidden target value; a configuration's quality is
    ``floor + (1 - floor) * closeness ** sharpness``, where ``closeness`` is the mean over
    the *active* holes of 1 for the target, falling linearly with the distance (categorical:
    1 or 0.25). The optimum, 1.0, is reached by the targets (inactive holes do not count).
    """

    template: Pipeline
    targets: Mapping[str, Value]
    floor: float = 0.1
    sharpness: float = 3.0

    @classmethod
    def random(cls, template: Pipeline, seed: int, **options: float) -> Landscape:
        """Targets drawn with ``random.Random(seed)``."""
        rng = random.Random(seed)
        targets = {ref.name: _target(ref, rng) for ref in holes(template)}
        return cls(template, targets, **options)

    def quality_of_params(self, params: Mapping[str, Value]) -> float:
        """Quality of a configuration given by its active hole values."""
        active = [ref for ref in holes(self.template) if ref.name in params]
        if not active:
            return 1.0
        total = sum(_closeness(ref, params[ref.name], self.targets[ref.name]) for ref in active)
        closeness = total / len(active)
        return float(self.floor + (1.0 - self.floor) * closeness**self.sharpness)

    def quality(self, concrete: Pipeline) -> float:
        """Quality of a concrete pipeline of the template."""
        return self.quality_of_params(chosen_params(self.template, concrete))

    def optimum(self) -> float:
        """The best quality any configuration reaches (targets are always reachable)."""
        return 1.0


class SimulatedEvaluator:
    """An instant evaluator: item *i* is correct with probability ``quality(pipeline)``.

    Draws are seeded by (seed, item id (or index), pipeline fingerprint), so evaluations are
    reproducible. With ``noise=False`` every chunk scores exactly ``quality``. Each item
    "spends" the pipeline's static call estimate from the search budget (reserved, then
    settled), so search budgets behave as with a real model.

    Attributes:
        evaluations: pipelines evaluated, in order (their fingerprints).
    """

    def __init__(
        self,
        quality: Callable[[Pipeline], float],
        registry: Registry,
        *,
        noise: bool = True,
        seed: int = 0,
    ) -> None:
        self.quality = quality
        self.registry = registry
        self.noise = noise
        self.seed = seed
        self.evaluations: list[str] = []
        self.calls = 0

    async def evaluate_chunks(
        self,
        pipeline: Pipeline,
        items: Sequence[object],
        *,
        chunk_size: int,
        budget: Meter | None,
    ) -> AsyncGenerator[Progress, None]:
        """See :class:`~archon.search.objective.Evaluator`."""
        fingerprint = pipeline.fingerprint()
        self.evaluations.append(fingerprint)
        q = self.quality(pipeline)
        per_item = estimate(pipeline, self.registry).calls
        done, total, calls = 0, 0.0, 0
        scores: list[tuple[str, float]] = []
        for start in range(0, len(items), max(1, chunk_size)):
            for index in range(start, min(len(items), start + max(1, chunk_size))):
                if budget is not None and per_item:
                    try:
                        held = await budget.reserve(Reservation(per_item, 0, 0.0))
                    except BudgetExceeded as error:
                        yield Progress(done, total / done if done else 0.0, calls, stopped=error)
                        return
                    budget.settle(held, Usage(calls=per_item))
                calls += per_item
                self.calls += per_item
                done += 1
                key = getattr(items[index], "id", index)
                score = float(_unit(self.seed, key, fingerprint) < q) if self.noise else q
                total += score
                scores.append((str(key), score))
            yield Progress(done, total / done, calls, scores=tuple(scores))


# --- a simulated model client ----------------------------------------------------------------

_EXPR = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)")
_NUMBER = re.compile(r"-?\d+")


def _solve(text: str) -> int | None:
    match = _EXPR.search(text)
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return a + b if op == "+" else a - b if op == "-" else a * b


def simulated_client(
    accuracy: Callable[[CompletionRequest], float],
    *,
    seed: int = 0,
    latency_s: float = 0.0,
) -> ScriptedClient:
    """A client answering ``a + b`` questions correctly with probability ``accuracy(request)``.

    Each answer is drawn from (seed, question, model, temperature, request seed), so
    repeated samples of one question differ and equal requests agree (cacheable).
    """

    def reply(request: CompletionRequest) -> str:
        question = last_user(request)
        answer = _solve(question)
        if answer is None:
            return "I do not know."
        u = _unit(seed, question, request.model, request.temperature, request.seed)
        if u < accuracy(request):
            return f"The answer is {answer}.\nAnswer: {answer}"
        wrong = answer + 1 + int(_unit(seed, "wrong", question, request.seed) * 3)
        return f"The answer is {wrong}.\nAnswer: {wrong}"

    return ScriptedClient(reply, latency_s=latency_s)


def arithmetic_items(count: int, *, seed: int = 0) -> tuple[EvalItem, ...]:
    """``count`` questions "What is a + b?" with their answers as targets."""
    rng = random.Random(seed)
    items = []
    for index in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        items.append(
            EvalItem(
                id=f"sim-{seed}-{index}", turns=(f"What is {a} + {b}?",), targets=(str(a + b),)
            )
        )
    return tuple(items)


def last_number_matches(item: EvalItem, answer: str) -> float:
    """1.0 when the last integer in ``answer`` is one of the item's targets."""
    numbers = _NUMBER.findall(answer)
    return 1.0 if numbers and numbers[-1] in item.targets else 0.0
