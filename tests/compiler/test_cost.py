"""Static cost: calls and tokens of a concrete pipeline, min/max over a template.

Expected numbers are worked out by hand from each layer's ``estimate`` (prompt overhead 64
tokens, query 512 tokens unless given).
"""

from __future__ import annotations

from archon.compiler.cost import ModelCost, estimate, estimate_range
from archon.layers import default_registry

from .helpers import compile_ok

REGISTRY = default_registry()
A = "openai/a"
B = "openai/b"


def test_estimate_of_a_concrete_pipeline() -> None:
    p = compile_ok(
        f"""pipeline p {{
          generate(models = ["{A}", "{B}"], samples = 2, max_tokens = 100)
          rank(model = "{A}", max_tokens = 50)
          fuse(models = ["{B}"], max_tokens = 80)
        }}"""
    )
    cost = estimate(p, REGISTRY, query_tokens=512)
    # generate: per model 2 calls, in 2 * (64 + 512) = 1152, out 2 * 100 = 200; 4 items.
    # rank (listwise, 4 items of 100): 1 call, in 64 + 512 + 400 = 976, out 50; keeps 3.
    # fuse (3 items of 100): 1 call, in 64 + 512 + 300 = 876, out 80.
    assert cost.per_model == (
        ModelCost(A, calls=3, tokens_in=1152 + 976, tokens_out=200 + 50),
        ModelCost(B, calls=3, tokens_in=1152 + 876, tokens_out=200 + 80),
    )
    assert cost.calls == 6
    assert cost.tokens == (2128 + 250) + (2028 + 280)


def test_query_tokens_change_the_input_bound() -> None:
    p = compile_ok(f'pipeline p {{ generate(models = ["{A}"], max_tokens = 10) }}')
    assert estimate(p, REGISTRY, query_tokens=100).tokens == 64 + 100 + 10
    assert estimate(p, REGISTRY, query_tokens=200).tokens == 64 + 200 + 10


def test_estimate_range_over_a_template() -> None:
    p = compile_ok(
        f"""pipeline p {{
          generate(models = ["{A}"], samples = int(1, 3), max_tokens = 100)
          optional rank(model = "{A}")
        }}"""
    )
    cost = estimate_range(p, REGISTRY, query_tokens=512)
    # min: 1 sample, rank of one candidate makes no call: in 576, out 100.
    # max: 3 samples (in 3 * 576, out 300) and a listwise rank of 3 candidates of 100 tokens
    #      (in 64 + 512 + 300 = 876, out the default max_tokens 512).
    assert (cost.min_calls, cost.max_calls) == (1, 4)
    assert (cost.min_tokens, cost.max_tokens) == (676, 1728 + 300 + 876 + 512)
    assert cost.configurations == 3 * 2
    assert cost.exhaustive


def test_estimate_range_samples_large_spaces_and_keeps_the_corners() -> None:
    p = compile_ok(
        f"""pipeline p {{
          generate(models = ["{A}"], samples = int(1, 8), max_tokens = choice(10, 20))
          repeat int(0, 2) {{ fuse(models = ["{A}"], samples = int(1, 2)) }}
        }}"""
    )
    full = estimate_range(p, REGISTRY)
    sampled = estimate_range(p, REGISTRY, max_configurations=10)
    assert full.exhaustive and not sampled.exhaustive
    assert sampled.configurations == 10 + 2
    # The all-lowest and all-highest corners are always included.
    assert (sampled.min_calls, sampled.max_calls) == (full.min_calls, full.max_calls)
    assert full.min_calls == 1
    assert full.max_calls == 8 + 2 * 2
    assert full.configurations == 8 * 2 * 3 * 2 * 2


def test_a_concrete_pipeline_has_a_single_point_range() -> None:
    p = compile_ok(f'pipeline p {{ generate(models = ["{A}"], samples = 2) }}')
    cost = estimate_range(p, REGISTRY)
    single = estimate(p, REGISTRY)
    assert (cost.min_calls, cost.max_calls, cost.configurations) == (2, 2, 1)
    assert cost.min_tokens == cost.max_tokens == single.tokens
