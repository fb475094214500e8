"""The ordered compile passes over the IR. Each is ``(Pipeline, Registry) -> diagnostics``."""

from __future__ import annotations

from collections.abc import Callable

from archon.compiler import checks
from archon.compiler.cost import estimate_range
from archon.compiler.param_checks import check_params
from archon.errors import Diagnostic, Severity
from archon.ir import Pipeline
from archon.layers.registry import Registry

Pass = Callable[[Pipeline, Registry], list[Diagnostic]]


def check_budget(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """A budget that no configuration can meet is an error; one that some exceed, a warning."""
    budget = pipeline.budget
    if budget.calls is None and budget.tokens is None:
        return []
    cost = estimate_range(pipeline, registry)
    diagnostics = []
    for name, limit, low, high in (
        ("calls", budget.calls, cost.min_calls, cost.max_calls),
        ("tokens", budget.tokens, cost.min_tokens, cost.max_tokens),
    ):
        if limit is None:
            continue
        if low > limit:
            diagnostics.append(
                Diagnostic(
                    code="E314",
                    message=f"budget {name} <= {limit} can never be met:"
                    f" even the cheapest configuration may need {low} {name} per query",
                    span=budget.span,
                    hint=f"raise the budget to at least {low} or make the pipeline smaller",
                )
            )
        elif high > limit:
            diagnostics.append(
                Diagnostic(
                    code="W314",
                    severity=Severity.WARNING,
                    message=f"some configurations may use up to {high} {name} per query,"
                    f" over the budget of {limit}",
                    span=budget.span,
                    hint="search skips them; `archon run` stops a query that reaches the budget",
                )
            )
    return diagnostics


STRUCTURAL_PASSES: tuple[Pass, ...] = (
    checks.check_ids,
    checks.check_cycles,
)
"""Run first: later passes assume ids are unique, inputs exist and the graph is acyclic."""

PASSES: tuple[Pass, ...] = (
    check_params,
    checks.check_ports,
    checks.check_output,
    checks.check_structure,
    checks.check_unused,
    checks.check_gates,
)
"""Run when the structural passes found no error; all their diagnostics are collected."""

FINAL_PASSES: tuple[Pass, ...] = (check_budget,)
"""Run on an otherwise valid pipeline (they need every node to validate)."""


def run_passes(pipeline: Pipeline, registry: Registry) -> list[Diagnostic]:
    """Every diagnostic the passes find, in pass order."""
    diagnostics: list[Diagnostic] = []
    for group in (STRUCTURAL_PASSES, PASSES, FINAL_PASSES):
        for check in group:
            diagnostics.extend(check(pipeline, registry))
        if any(d.is_error for d in diagnostics):
            break
    return diagnostics
