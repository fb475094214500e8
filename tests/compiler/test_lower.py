"""Lowering: ids, labels, block prefixes, repeat unrolling, implicit inputs, alias resolution."""

from __future__ import annotations

from archon.ir import Choice, IntRange, Requirement

from .helpers import M, check, compile_ok, ids, inputs

HEADER = f'models {{ m = "{M}" }}\n'


def test_auto_ids_count_per_kind_and_labels_are_kept() -> None:
    result = check(
        HEADER
        + """pipeline p {
          generate(models = [m])
          drafts = generate(models = [m])
          rank(model = m)
          fuse(models = [m])
          rank(model = m)
        }"""
    )
    p = result.pipeline
    assert p is not None
    assert ids(p) == ["generate_1", "drafts", "rank_1", "fuse_1", "rank_2"]
    assert p.output == "rank_2"
    assert p.name == "p"
    # rank_1 reads the nearest candidates (drafts), so generate_1 feeds nothing.
    assert inputs(p)["rank_1"] == ("drafts",)
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("W401", "node 'generate_1' does not contribute to the output")
    ]


def test_auto_ids_skip_names_taken_by_labels() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          rank_1 = generate(models = [m])
          rank(model = m)
        }"""
    )
    assert ids(p) == ["rank_1", "rank_2"]
    assert inputs(p)["rank_2"] == ("rank_1",)


def test_chain_reads_the_previous_layer() -> None:
    p = compile_ok(
        HEADER + "pipeline p { generate(models = [m]) critique(model = m) rank(model = m) }"
    )
    assert inputs(p) == {
        "generate_1": (),
        "critique_1": ("generate_1",),
        "rank_1": ("critique_1",),
    }


def test_implicit_inputs_pick_the_nearest_producer_of_each_payload_type() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          unit_test_generate(model = m)
          generate(models = [m], temperature = 1.0)
          unit_test_evaluate()
          rank(model = m) <- generate_1, unit_test_evaluate_1
        }"""
    )
    # Candidates from the nearest earlier generate (generate_2), Tests from the test writer.
    assert inputs(p)["unit_test_evaluate_1"] == ("generate_2", "unit_test_generate_1")


def test_a_candidate_reader_skips_a_tests_producer() -> None:
    result = check(
        HEADER
        + """pipeline p {
          generate(models = [m])
          unit_test_generate(model = m)
          rank(model = m)
        }"""
    )
    assert result.pipeline is not None
    assert inputs(result.pipeline)["rank_1"] == ("generate_1",)
    # unit_test_generate_1 then feeds nothing: a warning, not an error.
    assert [d.code for d in result.diagnostics] == ["W401"]


def test_explicit_inputs_name_earlier_nodes_in_order_without_duplicates() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          a = generate(models = [m])
          b = generate(models = [m])
          fuse(models = [m]) <- b, a, b
        }"""
    )
    assert inputs(p)["fuse_1"] == ("b", "a")


def test_inputs_must_be_defined_earlier() -> None:
    result = check(
        HEADER
        + """pipeline p {
          generate(models = [m])
          rank(model = m) <- later
          later = fuse(models = [m])
        }"""
    )
    assert [d.code for d in result.errors] == ["E401"]
    assert "defined after" in result.errors[0].message
    assert result.pipeline is None


def test_block_instances_prefix_their_node_ids() -> None:
    p = compile_ok(
        HEADER
        + """block judged(judge, keep = 2) {
          rank(model = judge, top_k = keep)
          fuse(models = [judge])
        }
        pipeline p {
          generate(models = [m])
          first = judged(judge = m)
          judged(judge = "local/qwen2.5-coder-0.5b", keep = 1)
        }"""
    )
    assert ids(p) == [
        "generate_1",
        "first.rank_1",
        "first.fuse_1",
        "judged_1.rank_1",
        "judged_1.fuse_1",
    ]
    assert inputs(p)["first.rank_1"] == ("generate_1",)
    assert inputs(p)["judged_1.rank_1"] == ("first.fuse_1",)
    first = p.node("first.rank_1")
    second = p.node("judged_1.rank_1")
    assert first.arguments() == {"model": M, "top_k": 2}  # the default
    assert second.arguments() == {"model": "local/qwen2.5-coder-0.5b", "top_k": 1}


def test_nested_blocks_prefix_twice() -> None:
    p = compile_ok(
        HEADER
        + """block inner(x) { fuse(models = [x]) }
        block outer(y) { inner(x = y) }
        pipeline p { generate(models = [m]) outer(y = m) }"""
    )
    assert ids(p) == ["generate_1", "outer_1.inner_1.fuse_1"]
    assert p.node("outer_1.inner_1.fuse_1").arguments() == {"models": (M,)}


def test_a_block_reads_the_explicit_inputs_of_its_call() -> None:
    p = compile_ok(
        HEADER
        + """block judged(judge) { rank(model = judge) }
        pipeline p {
          a = generate(models = [m])
          b = generate(models = [m])
          judged(judge = m) <- a
          fuse(models = [m]) <- judged_1, b
        }"""
    )
    assert inputs(p)["judged_1.rank_1"] == ("a",)
    # The block's label refers to its last node.
    assert inputs(p)["fuse_1"] == ("judged_1.rank_1", "b")


def test_fixed_repeat_unrolls_without_switches() -> None:
    p = compile_ok(HEADER + "pipeline p { generate(models = [m]) repeat 3 { fuse(models = [m]) } }")
    assert ids(p) == ["generate_1", "fuse_1.1", "fuse_1.2", "fuse_1.3"]
    assert inputs(p)["fuse_1.3"] == ("fuse_1.2",)
    assert p.switches == ()
    assert all(n.requires == () for n in p.nodes)


def test_repeat_with_a_hole_requires_the_count_per_copy() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          repeat int(0, 2) { critique(model = m) fuse(models = [m]) }
          rank(model = m)
        }"""
    )
    assert ids(p) == [
        "generate_1",
        "critique_1.1",
        "fuse_1.1",
        "critique_1.2",
        "fuse_1.2",
        "rank_1",
    ]
    (switch,) = p.switches
    assert switch.name == "repeat_1.count"
    assert switch.kind == "repeat"
    assert isinstance(switch.value, IntRange)
    assert (switch.value.low, switch.value.high) == (0, 2)
    assert p.node("critique_1.1").requires == (Requirement(switch="repeat_1.count", at_least=1),)
    assert p.node("fuse_1.2").requires == (Requirement(switch="repeat_1.count", at_least=2),)
    assert p.node("rank_1").requires == ()
    assert inputs(p)["rank_1"] == ("fuse_1.2",)


def test_a_labelled_repeat_names_its_switch_and_output() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          layers = repeat choice(1, 3) { fuse(models = [m]) }
          rank(model = m) <- layers
        }"""
    )
    assert [s.name for s in p.switches] == ["layers.count"]
    assert isinstance(p.switches[0].value, Choice)
    assert p.switches[0].value.options == (1, 3)
    assert ids(p)[1:4] == ["fuse_1.1", "fuse_1.2", "fuse_1.3"]
    assert inputs(p)["rank_1"] == ("fuse_1.3",)


def test_nested_repeats_suffix_inner_copy_then_outer_copy() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          repeat 2 { repeat 2 { fuse(models = [m]) } }
        }"""
    )
    assert ids(p) == ["generate_1", "fuse_1.1.1", "fuse_1.2.1", "fuse_1.1.2", "fuse_1.2.2"]
    assert inputs(p)["fuse_1.1.2"] == ("fuse_1.2.1",)


def test_labels_inside_a_repeat_get_the_copy_suffix() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          repeat 2 { c = critique(model = m) fuse(models = [m]) <- c }
        }"""
    )
    assert ids(p) == ["generate_1", "c.1", "fuse_1.1", "c.2", "fuse_1.2"]
    assert inputs(p)["fuse_1.2"] == ("c.2",)
    assert inputs(p)["c.2"] == ("fuse_1.1",)


def test_repeat_zero_warns_and_adds_no_nodes() -> None:
    result = check(HEADER + "pipeline p { generate(models = [m]) repeat 0 { fuse(models = [m]) } }")
    assert [d.code for d in result.diagnostics] == ["W301"]
    assert result.pipeline is not None
    assert ids(result.pipeline) == ["generate_1"]


def test_optional_becomes_an_enabled_switch() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          best = optional rank(model = m)
          fuse(models = [m])
        }"""
    )
    (switch,) = p.switches
    assert switch.name == "best.enabled"
    assert switch.kind == "optional"
    assert isinstance(switch.value, Choice)
    assert switch.value.options == (True, False)
    assert p.node("best").requires == (Requirement(switch="best.enabled", at_least=1),)
    assert p.node("fuse_1").requires == ()


def test_optional_inside_a_hole_repeat_requires_both_switches() -> None:
    p = compile_ok(
        HEADER
        + """pipeline p {
          generate(models = [m])
          repeat int(1, 2) { optional critique(model = m) }
        }"""
    )
    assert p.node("critique_1.2").requires == (
        Requirement(switch="repeat_1.count", at_least=2),
        Requirement(switch="critique_1.2.enabled", at_least=1),
    )


def test_aliases_prompts_and_files_resolve_to_their_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "judge.txt").write_text("Judge strictly.\n", encoding="utf-8")
    main = tmp_path / "main.pipe"
    main.write_text(
        """models {
          judge = "openai/gpt-4o-mini"
          referee = judge
          server = model("openai/qwen", api_base = "http://127.0.0.1:8000/v1")
        }
        prompts { strict = file("judge.txt")  again = strict }
        pipeline p {
          generate(models = [referee, server], system_prompt = again)
        }""",
        encoding="utf-8",
    )
    from archon.compiler import check_file

    result = check_file(main)
    assert result.diagnostics == ()
    assert result.pipeline is not None
    assert result.pipeline.nodes[0].arguments() == {
        "models": ("openai/gpt-4o-mini", "openai/qwen"),
        "system_prompt": "Judge strictly.\n",
    }
    specs = {s.alias: s for s in result.pipeline.models}
    assert specs["referee"].model == "openai/gpt-4o-mini"
    assert [(o.name, o.value) for o in specs["server"].options] == [
        ("api_base", "http://127.0.0.1:8000/v1")
    ]


def test_unknown_alias_suggests_the_close_name() -> None:
    result = check('models { judge = "x/y" }\npipeline p { generate(models = [jugde]) }')
    (error,) = result.errors
    assert error.code == "E201"
    assert error.hint == "did you mean 'judge'?"
    assert error.span is not None and (error.span.line, error.span.col) == (2, 33)


def test_a_broken_definition_is_reported_once_not_at_every_use() -> None:
    result = check(
        "models { judge = 3 }\n"
        "pipeline p { generate(models = [judge]) rank(model = judge) fuse(models = [judge]) }"
    )
    assert [d.code for d in result.diagnostics] == ["E213"]


def test_errors_in_a_repeat_body_are_reported_once() -> None:
    result = check(HEADER + "pipeline p { generate(models = [m]) repeat 3 { fsue(models = [m]) } }")
    assert [(d.code, d.hint) for d in result.diagnostics] == [("E203", "did you mean 'fuse'?")]


def test_a_value_from_a_block_argument_is_reported_where_it_was_written() -> None:
    result = check(
        HEADER
        + "block b(k) {\n  rank(model = m, top_k = k)\n}\n"
        + "pipeline p {\n  generate(models = [m])\n  b(k = 0)\n}"
    )
    (error,) = result.errors
    assert error.code == "E302"
    assert error.span is not None and (error.span.line, error.span.col) == (7, 9)
    assert any("test.pipe:3:19" in note and "b_1.rank_1" in note for note in error.notes)
