"""Parameter groups shared by several layer kinds (sampling knobs, prompt overrides)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from archon.layers.base import LayerParams

TopK = Annotated[int | None, Field(ge=1, le=1024)]
"""A ``top_k`` parameter: keep the best this many (``None``: keep all). Declared as a type
rather than a base class, so that each kind's fields keep their order (and its schema)."""


class SamplingParams(LayerParams):
    """Decoding knobs. ``None`` leaves the provider default; ``0`` is an explicit zero."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1, le=1_000_000)
    seed: int | None = None
    stop: tuple[str, ...] = Field((), max_length=16)
    """Stop strings: a reply ends before the first of them (which it does not include)."""
    stop_after_code: bool = False
    """End each reply after its first complete fenced code block, closing fence included:
    the explanation a model writes after its program is neither generated nor kept. A stop
    string ``"```"`` would cut at the opening fence instead; see
    :mod:`archon.runtime.clients.code_stop` for how each backend stops."""
    prompt: str | None = None
    """Override of the layer's user prompt template (see ``archon run --show-prompts``)."""
    system_prompt: str | None = None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in stop):
            raise ValueError("a stop string cannot be empty")
        return stop


class JudgeParams(SamplingParams):
    """A layer that asks one judge model about candidates."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(0.0, ge=0.0, le=2.0)


class EnsembleParams(SamplingParams):
    """A layer that samples from an ensemble of models."""

    models: tuple[str, ...] = Field(min_length=1)
    samples: int = Field(1, ge=1, le=1024)
