"""Writing IR back as .pipe text: compiling the text gives the same graph."""

from __future__ import annotations

import pytest

from archon.compiler import compile_source
from archon.compiler.emit import EmitError, label_for, pipeline_to_pipe
from archon.compiler.structure import assign
from archon.ir import strip_spans
from archon.layers import default_registry

TEMPLATE = """
models {
  small = "local/qwen2.5-coder-0.5b"
  judge = model("openai/x", api_base = "http://127.0.0.1:1/v1")
}
block rf(j) { rank(model = j, top_k = 2)  fuse(models = [j]) }
pipeline t {
  budget { calls <= 90  usd <= 0.5 }
  gen = generate(models = [small, judge], samples = choice(1, 3), temperature = float(0.1, 0.9))
  optional critique(model = judge)
  repeat int(0, 2) { fuse(models = [small]) }
  rf(j = judge)
}
"""


def _ids_and_edges(pipeline):  # type: ignore[no-untyped-def]
    return [
        (label_for(n.id), n.kind, tuple(label_for(i) for i in n.inputs)) for n in pipeline.nodes
    ]


def test_concrete_pipeline_round_trips_through_text() -> None:
    template = compile_source(TEMPLATE)
    concrete, _ = assign(template, {"repeat_1.count": 2, "gen.samples": 3}, default_registry())
    text = pipeline_to_pipe(concrete)
    back = compile_source(text)
    assert _ids_and_edges(back) == _ids_and_edges(concrete)
    for mine, theirs in zip(concrete.nodes, back.nodes, strict=True):
        assert strip_spans(mine)["params"] == strip_spans(theirs)["params"]
    assert back.budget.calls == 90 and back.budget.usd == 0.5
    assert {m.alias: m.model for m in back.models} == {
        "small": "local/qwen2.5-coder-0.5b",
        "judge": "openai/x",
    }
    assert back.fingerprint() == compile_source(pipeline_to_pipe(back)).fingerprint()


def test_param_holes_and_optional_are_written_back() -> None:
    template = compile_source(TEMPLATE.replace("repeat int(0, 2)", "repeat 1"))
    back = compile_source(pipeline_to_pipe(template))
    assert [s.name for s in back.switches] == ["critique_1.enabled"]
    gen = back.node("gen")
    assert strip_spans(gen.param("samples"))["value"]["options"] == [1, 3]  # type: ignore[arg-type]


def test_repeat_switch_must_be_assigned_first() -> None:
    with pytest.raises(EmitError, match=r"repeat_1\.count"):
        pipeline_to_pipe(compile_source(TEMPLATE))
