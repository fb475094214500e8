"""The pipelines a server answers with, and which request fields may override them.

A pipeline is **direct** when its output node is a single ``generate`` or ``fuse`` call: one
model and ``samples = 1``. Its answer is then exactly the text of that one call, so

* the request's ``temperature``, ``top_p`` and ``max_tokens`` override that node's values
  (the call that writes the answer is the one they would set on a plain model), and
* ``stream: true`` streams that call's tokens as they arrive.

For any other pipeline (a vote, a rank, several fusers, ...) no single call writes the answer:
those fields are ignored (and listed in ``usage.archon.ignored``), and a stream carries the
answer once the pipeline has finished. The kinds are named here rather than probed because the
rule depends on what the kind returns (its call's completion as the first candidate), which
``generate`` and ``fuse`` document.
"""

from __future__ import annotations

from dataclasses import dataclass

from archon.ir import Node, Param, Pipeline
from archon.layers.common import EnsembleParams
from archon.layers.registry import Registry
from archon.runtime import prepare
from archon.serve.chat import Sampling

DIRECT_KINDS = frozenset({"generate", "fuse"})
"""Kinds whose first candidate is the completion of their first call."""


@dataclass(frozen=True)
class ServedPipeline:
    """A concrete pipeline served under ``name``.

    Attributes:
        name: the model name clients ask for.
        pipeline: the concrete pipeline (holes assigned).
        answer_node: the output node when the pipeline is direct (see the module), else None.
        fingerprint: the pipeline's IR fingerprint (computed once: it hashes the whole IR).
    """

    name: str
    pipeline: Pipeline
    answer_node: str | None = None
    fingerprint: str = ""

    @classmethod
    def build(cls, name: str, pipeline: Pipeline, registry: Registry) -> ServedPipeline:
        """Check ``pipeline`` can run (raises PipelineNotConcrete / InvalidNode) and find
        whether it is direct."""
        prepared = prepare(pipeline, registry)
        output = next(item for item in prepared.nodes if item.node.id == pipeline.output)
        params = output.params
        direct = (
            output.node.kind in DIRECT_KINDS
            and isinstance(params, EnsembleParams)
            and len(params.models) == 1
            and params.samples == 1
        )
        return cls(name, pipeline, pipeline.output if direct else None, pipeline.fingerprint())

    @property
    def direct(self) -> bool:
        return self.answer_node is not None

    def for_request(
        self, sampling: Sampling, allow: bool = True
    ) -> tuple[Pipeline, tuple[str, ...]]:
        """The pipeline to run for a request's sampling values, and the names of the given
        values it ignores."""
        given = sampling.given()
        if not given:
            return self.pipeline, ()
        if not allow or self.answer_node is None:
            return self.pipeline, given
        values = {name: getattr(sampling, name) for name in given}
        nodes = tuple(
            _with_params(node, values) if node.id == self.answer_node else node
            for node in self.pipeline.nodes
        )
        return self.pipeline.model_copy(update={"nodes": nodes}), ()


def _with_params(node: Node, values: dict[str, object]) -> Node:
    kept = tuple(p for p in node.params if p.name not in values)
    added = tuple(Param(name=name, value=value) for name, value in values.items())
    return node.model_copy(update={"params": kept + added})
