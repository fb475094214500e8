"""The original Archon's config vocabulary and execution model, shared by import and export.

An Archon config is ``{"name": str, "layers": [...]}``; each layer is a list of components
(or, in older files, ``{"branches": int, "models": [components]}``). A component has a
``type``, a ``model`` and ``model_type`` (mapped to a litellm provider prefix) and per-type
options.

Execution (Archon's ``Layer.process``): every component of a layer reads the state the
previous layer left -- ``candidates``, ``critiques``, ``unit_tests`` -- and adds what it
produces to a fresh state; a key that no component of the layer wrote passes through
unchanged. So the components of a layer run side by side on the same input, and a layer that
writes candidates replaces them all: a second layer of generators discards the first one's
candidates, and fusers placed next to generators fuse the previous layer's candidates, not
their neighbours'. Archon answers with a random one of the final candidates.

Here a critic's critiques ride on the candidates they describe, so a critic is a component
that writes candidates (the same ones, annotated); a unit-test generator writes tests.
"""

from __future__ import annotations

from collections.abc import Mapping

from archon.errors import ArchonError

MODEL_TYPES: Mapping[str, str] = {
    "OpenAI_API": "openai",
    "Anthropic_API": "anthropic",
    "Together_API": "together_ai",
    "Google_API": "gemini",
    "Groq_API": "groq",
    "Bedrock_API": "bedrock",
    "vLLM": "hosted_vllm",
    "DeepSeek_API": "deepseek",
    "Mistral_API": "mistral",
}
"""Archon ``model_type`` -> litellm provider prefix."""

KINDS: Mapping[str, str] = {
    "generator": "generate",
    "critic": "critique",
    "ranker": "rank",
    "fuser": "fuse",
    "verifier": "verify",
    "unit_test_generator": "unit_test_generate",
    "unit_test_evaluator": "unit_test_evaluate",
}
"""Archon component ``type`` -> layer kind."""

TYPES: Mapping[str, str] = {kind: archon_type for archon_type, kind in KINDS.items()}
"""Layer kind -> Archon component ``type``."""

READS_CANDIDATES = frozenset({"critic", "ranker", "fuser", "verifier", "unit_test_evaluator"})
"""Archon types that read the previous layer's candidates (they fail on none)."""

READS_TESTS = frozenset({"unit_test_evaluator"})
"""Archon types that read the previous layers' unit tests."""

WRITES_TESTS = frozenset({"unit_test_generator"})
"""Archon types that write unit tests; every other type writes candidates."""

_COMMON = {"temperature": "temperature", "max_tokens": "max_tokens"}
OPTIONS: Mapping[str, Mapping[str, str]] = {
    "generator": {**_COMMON, "model": "models", "samples": "samples"},
    "critic": {**_COMMON, "model": "model"},
    "ranker": {**_COMMON, "model": "model", "top_k": "top_k", "use_critiques": "use_critiques"},
    "fuser": {**_COMMON, "model": "models", "samples": "samples"},
    "verifier": {**_COMMON, "model": "model"},
    "unit_test_generator": {**_COMMON, "model": "model", "unit_test_cap": "num_tests"},
    "unit_test_evaluator": {**_COMMON, "model": "model", "top_k": "top_k"},
}
"""Archon option -> layer parameter, per component type (``models``: a one-model list)."""

KNOWN_UNMAPPED = frozenset(
    {
        "ranker_batch_size",
        "remove_unit_tests_from_prompt",
        "first_pass",
        "first_k",
        "batch_num",
        "length_control",
        "checkpoint",
        "samples",
        "top_k",
    }
)
"""Archon options understood but with no equivalent parameter: kept as comments, warned."""

STRUCTURAL = frozenset({"type", "model_type"})
"""Component keys that are translated as part of the model, not as options."""


class ArchonConfigError(ArchonError):
    """The file is not an Archon architecture config, or a pipeline has no Archon form."""


def reads_candidates(kind: str) -> bool:
    """Whether a node of layer ``kind`` reads candidates, as its Archon component does."""
    return TYPES.get(kind) in READS_CANDIDATES


def reads_tests(kind: str) -> bool:
    return TYPES.get(kind) in READS_TESTS


def writes_tests(kind: str) -> bool:
    return TYPES.get(kind) in WRITES_TESTS
