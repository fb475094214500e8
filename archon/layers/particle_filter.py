"""``particle_filter``: particle-based Monte Carlo search over reasoning steps.

Puri et al. (arXiv 2502.01618; Red Hat's its_hub): ``particles`` partial answers advance one
sampled step per round (all concurrently); each is weighted by the process score of its
latest state, and the population is resampled in proportion to the weights, so promising
partial answers are copied and poor ones dropped while sampling keeps the search
stochastic. Particles that finish stay in the population with their final weight (they can
be copied, never extended); the search ends when every particle is finished, after
``max_steps`` rounds, or before a round the budget cannot pay for.

Weights (``weighting``): ``softmax`` is the its_hub rule, ``softmax(logit(score))`` over the
particles, i.e. proportional to the odds ``s / (1 - s)``; ``linear`` normalises the scores
themselves. Resampling (``resample``): ``systematic`` (one uniform draw, low variance; each
particle is copied ``floor(N w)`` or ``ceil(N w)`` times) or ``multinomial`` (N independent
draws, as in its_hub), both from the node's seeded ``ctx.rng``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from archon.layers._scorers import make_scorer
from archon.layers._search import STEP_SEARCH_PROMPTS, StepSearch, step_estimate
from archon.layers._steps import Partial, StepSearchParams
from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate
from archon.values import Candidates, Payload

_CLIP = 1e-7


class ParticleFilterParams(StepSearchParams):
    """``particles`` partial answers, reweighted and resampled after every step."""

    particles: int = Field(8, ge=1, le=1024)
    resample: Literal["systematic", "multinomial"] = "systematic"
    weighting: Literal["softmax", "linear"] = "softmax"


def importance_weights(scores: Sequence[float], weighting: str = "softmax") -> list[float]:
    """Normalised weights from process scores in ``[0, 1]``.

    ``softmax``: ``softmax(logit(s))`` (scores clipped to ``[1e-7, 1 - 1e-7]``);
    ``linear``: ``s / sum(s)``. All-zero linear scores give uniform weights.
    """
    if not scores:
        return []
    if weighting == "linear":
        total = sum(max(0.0, s) for s in scores)
        if total <= 0.0:
            return [1.0 / len(scores)] * len(scores)
        return [max(0.0, s) / total for s in scores]
    logits = [math.log(p / (1.0 - p)) for p in (min(1 - _CLIP, max(_CLIP, s)) for s in scores)]
    top = max(logits)
    exps = [math.exp(logit - top) for logit in logits]
    total = sum(exps)
    return [e / total for e in exps]


def systematic_resample(weights: Sequence[float], rng: random.Random, n: int) -> list[int]:
    """``n`` ancestor indices by systematic resampling: positions ``(u + i) / n`` for one
    ``u ~ U[0, 1)``, each mapped to the particle whose cumulative weight covers it."""
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    u = rng.random()
    last = len(weights) - 1
    return [min(last, bisect.bisect_right(cumulative, (u + i) / n * total)) for i in range(n)]


def multinomial_resample(weights: Sequence[float], rng: random.Random, n: int) -> list[int]:
    """``n`` ancestor indices drawn independently with probability proportional to weight."""
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    last = len(weights) - 1
    return [min(last, bisect.bisect_right(cumulative, rng.random() * total)) for _ in range(n)]


RESAMPLERS = {"systematic": systematic_resample, "multinomial": multinomial_resample}


class ParticleFilter(Layer[ParticleFilterParams]):
    """Particle filtering over reasoning steps: weight by process score, resample, repeat."""

    kind: ClassVar[str] = "particle_filter"
    Params = ParticleFilterParams
    consumes = ()
    produces = Candidates
    prompts = STEP_SEARCH_PROMPTS

    @classmethod
    def estimate(
        cls, params: ParticleFilterParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return step_estimate(params, query_tokens, params.particles, items=params.particles)

    async def run(
        self, ctx: LayerContext, params: ParticleFilterParams, inputs: Sequence[Payload]
    ) -> Payload:
        search = StepSearch(ctx, params, make_scorer(ctx, params))
        particles = [Partial(origin=k) for k in range(params.particles)]
        for round_index in range(params.max_steps):
            open_ = [k for k, p in enumerate(particles) if not p.complete]
            if not open_:
                break
            children = await search.round([particles[k] for k in open_])
            if children is None:  # the budget cannot pay for this round
                break
            for k, child in zip(open_, children, strict=True):
                particles[k] = child
            if all(p.complete for p in particles) or round_index == params.max_steps - 1:
                break  # the final population keeps its weights: no resampling after it
            weights = importance_weights(
                [p.score(params.aggregate) for p in particles], params.weighting
            )
            ancestors = RESAMPLERS[params.resample](weights, ctx.rng, params.particles)
            particles = [particles[a] for a in ancestors]
        return search.finish(
            [p for p in particles if p.complete],
            [p for p in particles if not p.complete],
            limit=params.particles,
        )
