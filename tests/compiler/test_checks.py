"""Each graph check, on a five-line ``.pipe`` input and on hand-built IR the language cannot
express (cycles, dangling ids, duplicate ids, unknown switches)."""

from __future__ import annotations

from archon.compiler import checks
from archon.compiler.passes import check_budget, run_passes
from archon.ir import Budget, Choice, Requirement, Switch
from archon.layers import default_registry

from .helpers import M, check, node, pipeline

REGISTRY = default_registry()
HEADER = f'models {{ m = "{M}" }}\n'


def diagnostics(text: str) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in check(HEADER + text).diagnostics]


# --- ids -------------------------------------------------------------------------------------


def test_duplicate_ids_in_hand_built_ir() -> None:
    p = pipeline(node("a"), node("a"), node("r", "rank", ("a",)))
    found = checks.check_ids(p, REGISTRY)
    assert [(d.code, d.message) for d in found] == [("E204", "node id 'a' is used twice")]


def test_dangling_input_gets_a_suggestion() -> None:
    p = pipeline(node("drafts"), node("r", "rank", ("draft",)))
    (found,) = checks.check_ids(p, REGISTRY)
    assert (found.code, found.message, found.hint) == (
        "E401",
        "node 'r' reads unknown node 'draft'",
        "did you mean 'drafts'?",
    )


def test_missing_output_node() -> None:
    p = pipeline(node("a"), output="b")
    (found,) = checks.check_ids(p, REGISTRY)
    assert (found.code, found.message) == ("E406", "output node 'b' does not exist")


def test_structural_errors_stop_the_later_passes() -> None:
    # The bad parameter would be E302, but a dangling input is reported alone first.
    p = pipeline(node("a", samples=0), node("r", "rank", ("nope",)))
    assert [d.code for d in run_passes(p, REGISTRY)] == ["E401"]


# --- cycles ----------------------------------------------------------------------------------


def test_cycle_in_hand_built_ir() -> None:
    p = pipeline(node("a", "fuse", ("b",)), node("b", "fuse", ("a",)), node("c", "rank", ("b",)))
    (found,) = checks.check_cycles(p, REGISTRY)
    assert found.code == "E407"
    assert found.message in ("dataflow cycle: a -> b -> a", "dataflow cycle: b -> a -> b")


def test_self_loop_is_a_cycle() -> None:
    (found,) = checks.check_cycles(pipeline(node("a", "fuse", ("a",))), REGISTRY)
    assert found.message == "dataflow cycle: a -> a"


def test_acyclic_graph_has_no_cycle() -> None:
    p = pipeline(node("a"), node("b", "fuse", ("a",)), node("c", "rank", ("a", "b")))
    assert checks.check_cycles(p, REGISTRY) == []


# --- ports -----------------------------------------------------------------------------------


def test_port_type_mismatch() -> None:
    found = diagnostics(
        """pipeline p {
          drafts = generate(models = [m])
          tests = unit_test_generate(model = m)
          rank(model = m) <- drafts, tests
        }"""
    )
    assert found == [("E404", "rank() cannot read Tests from 'tests' (it takes Candidates)")]


def test_missing_payload_among_explicit_inputs_suggests_the_producer() -> None:
    result = check(
        HEADER
        + """pipeline p {
          drafts = generate(models = [m])
          tests = unit_test_generate(model = m)
          unit_test_evaluate() <- drafts
        }"""
    )
    (error,) = result.errors
    assert error.code == "E405"
    assert error.hint == "add 'tests' to its inputs: `<- drafts, tests`"


def test_missing_payload_with_implicit_inputs_is_found_while_lowering() -> None:
    found = diagnostics("pipeline p {\n generate(models = [m])\n unit_test_evaluate()\n}")
    assert found == [
        ("E402", "unit_test_evaluate() reads Tests but no earlier layer produces them")
    ]


def test_ports_on_hand_built_ir() -> None:
    p = pipeline(node("t", "unit_test_generate"), node("r", "rank", ("t",)))
    assert [d.code for d in checks.check_ports(p, REGISTRY)] == ["E404", "E405"]


# --- output ----------------------------------------------------------------------------------


def test_pipeline_must_end_in_candidates() -> None:
    found = diagnostics(
        """pipeline p {
          drafts = generate(models = [m])
          unit_test_generate(model = m)
        }"""
    )
    assert (
        "E406",
        "the pipeline ends with unit_test_generate(), which produces Tests, not candidate answers",
    ) in found


# --- structure -------------------------------------------------------------------------------


def test_optional_generate_with_a_consumer_is_rejected() -> None:
    found = diagnostics(
        """pipeline p {
          optional generate(models = [m])
          rank(model = m)
        }"""
    )
    assert found == [
        ("E408", "generate() can be switched off, but then 'rank_1' has nothing to read")
    ]


def test_optional_pass_through_layers_are_fine() -> None:
    assert (
        diagnostics(
            """pipeline p {
          generate(models = [m])
          optional critique(model = m)
          optional rank(model = m)
        }"""
        )
        == []
    )


def test_a_generate_read_only_by_nodes_switched_off_with_it_is_fine() -> None:
    text = """pipeline p {
          generate(models = [m])
          r = repeat int(0, 1) { g = generate(models = [m]) fuse(models = [m]) <- g }
          rank(model = m) <- generate_1, r
        }"""
    assert diagnostics(text) == []
    # Read by a node that stays on when the repeat runs zero times, it is an error.
    exposed = text.replace(" fuse(models = [m]) <- g", "")
    assert [code for code, _ in diagnostics(exposed)] == ["E408"]


def test_unknown_switch_and_non_counting_switch_in_hand_built_ir() -> None:
    p = pipeline(
        node("a"),
        node("b", "rank", ("a",)).model_copy(
            update={"requires": (Requirement(switch="nope.enabled", at_least=1),)}
        ),
        switches=(Switch(name="x.count", kind="repeat", value=Choice(options=("one", "two"))),),
    )
    found = [(d.code, d.message) for d in checks.check_structure(p, REGISTRY)]
    assert found == [
        ("E313", "switch 'x.count' must count"),
        ("E410", "node 'b' requires unknown switch 'nope.enabled'"),
    ]


# --- unused ----------------------------------------------------------------------------------


def test_unused_node_warns() -> None:
    result = check(
        HEADER
        + """pipeline p {
          a = generate(models = [m])
          b = generate(models = [m])
          fuse(models = [m]) <- b
        }"""
    )
    assert result.pipeline is not None  # a warning does not stop compilation
    assert [(d.code, d.severity.value, d.hint) for d in result.diagnostics] == [
        ("W401", "warning", "connect it (`<- a`) or remove it")
    ]


# --- budget ----------------------------------------------------------------------------------


def test_budget_that_no_configuration_meets() -> None:
    p = pipeline(node("g", samples=Choice(options=(4, 8))), budget=Budget(calls=3))
    (found,) = check_budget(p, REGISTRY)
    assert found.code == "E314"
    assert "calls <= 3" in found.message and "4 calls" in found.message


def test_budget_that_some_configurations_exceed_warns() -> None:
    p = pipeline(node("g", samples=Choice(options=(2, 8))), budget=Budget(calls=5))
    (found,) = check_budget(p, REGISTRY)
    assert (found.code, found.severity.value) == ("W314", "warning")
    assert "up to 8 calls" in found.message


def test_budget_that_every_configuration_meets_is_silent() -> None:
    p = pipeline(node("g", samples=Choice(options=(2, 8))), budget=Budget(calls=8, usd=0.01))
    assert check_budget(p, REGISTRY) == []


def test_budget_errors_in_text() -> None:
    found = diagnostics(
        """pipeline p {
          budget { calls <= 0  cals <= 3 }
          generate(models = [m])
        }"""
    )
    assert found == [
        ("E312", "budget 'calls' must be positive, got 0"),
        ("E311", "unknown budget 'cals'"),
    ]
