"""IR -> ``.pipe`` text: how a searched or imported pipeline is written back as a file.

Every node is written in explicit form, ``id = kind(params) <- inputs``, so the text compiles
back to the same graph. Node ids that contain dots (block and repeat copies, e.g.
``fuse_1.2``) are written with ``__`` instead, since labels cannot contain dots. Model strings
that have an alias in ``pipeline.models`` are written as that alias. Parameter holes and
``optional`` switches are written back as holes; a ``repeat`` switch cannot be (its copies are
already unrolled), so assign it first with :func:`archon.compiler.structure.assign`.
"""

from __future__ import annotations

import math

from archon.dsl import ast
from archon.dsl.printer import print_file
from archon.errors import ArchonError
from archon.ir import Choice, FloatRange, IntRange, Node, Pipeline, Value, is_hole


class EmitError(ArchonError):
    """The pipeline cannot be written as ``.pipe`` text as it is."""


def label_for(node_id: str) -> str:
    """The label used for ``node_id`` in emitted text (dots become ``__``)."""
    return node_id.replace(".", "__")


def pipeline_to_ast(pipeline: Pipeline) -> ast.File:
    """An AST that compiles back to ``pipeline`` (modulo dotted ids, see module doc)."""
    repeats = [s.name for s in pipeline.switches if s.kind == "repeat"]
    if repeats:
        raise EmitError(
            f"pipeline '{pipeline.name}' still has repeat counts to choose ({', '.join(repeats)});"
            " assign its holes first"
        )
    aliases: dict[str, str] = {}
    items: list[ast.Item] = []
    if pipeline.models:
        bindings = []
        for spec in pipeline.models:
            aliases.setdefault(spec.model, spec.alias)
            value: ast.Value = ast.Str(spec.model)
            if spec.options:
                options = (ast.Arg(ast.Name(p.name), _value(p.value, {})) for p in spec.options)
                args = (ast.Arg(None, ast.Str(spec.model)), *options)
                value = ast.Call(ast.Name("model"), args)
            bindings.append(ast.Binding(ast.Name(spec.alias), value))
        items.append(ast.ModelsBlock(tuple(bindings)))
    body: list[ast.Stmt] = []
    budget = pipeline.budget
    entries = tuple(
        ast.BudgetEntry(ast.Name(name), ast.Num(limit))
        for name, limit in (
            ("calls", budget.calls),
            ("tokens", budget.tokens),
            ("usd", budget.usd),
            ("seconds", budget.seconds),
        )
        if limit is not None
    )
    if entries:
        body.append(ast.BudgetStmt(entries))
    optional = {s.name for s in pipeline.switches if s.kind == "optional"}
    for node in pipeline.nodes:
        body.append(_statement(node, aliases, optional))
    output_last = pipeline.nodes and pipeline.nodes[-1].id == pipeline.output
    if not output_last:
        raise EmitError(f"the output node '{pipeline.output}' must be the last node to be written")
    items.append(ast.PipelineDef(ast.Name(pipeline.name), tuple(body)))
    return ast.File(tuple(items))


def pipeline_to_pipe(pipeline: Pipeline) -> str:
    """``.pipe`` text for ``pipeline`` (see :func:`pipeline_to_ast`)."""
    return print_file(pipeline_to_ast(pipeline))


def _statement(node: Node, aliases: dict[str, str], optional: set[str]) -> ast.LayerStmt:
    switches = [r.switch for r in node.requires]
    is_optional = switches == [f"{node.id}.enabled"] and switches[0] in optional
    if switches and not is_optional:
        raise EmitError(f"node '{node.id}' depends on switches {switches}; assign them first")
    args = tuple(ast.Arg(ast.Name(p.name), _value(p.value, aliases)) for p in node.params)
    inputs = tuple(ast.Name(label_for(i)) for i in node.inputs)
    return ast.LayerStmt(
        call=ast.Call(ast.Name(node.kind), args),
        label=ast.Name(label_for(node.id)),
        optional=is_optional,
        inputs=inputs or None,
    )


def _value(value: object, aliases: dict[str, str]) -> ast.Value:
    if is_hole(value):
        return _hole(value, aliases)
    if isinstance(value, bool):
        return ast.Bool(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise EmitError(f"{value} cannot be written in a .pipe file")
        return ast.Num(value)
    if isinstance(value, str):
        return ast.Ref(aliases[value]) if value in aliases else ast.Str(value)
    if isinstance(value, tuple):
        return ast.ListValue(tuple(_value(v, aliases) for v in value))
    raise EmitError(f"cannot write {value!r} in a .pipe file")


def _hole(hole: Choice | IntRange | FloatRange, aliases: dict[str, str]) -> ast.Call:
    if isinstance(hole, Choice):
        return ast.Call(
            ast.Name("choice"), tuple(ast.Arg(None, _value(o, aliases)) for o in hole.options)
        )
    args = [ast.Arg(None, ast.Num(hole.low)), ast.Arg(None, ast.Num(hole.high))]
    extras: dict[str, Value | None] = {
        "step": None if isinstance(hole, IntRange) and hole.step == 1 else hole.step,
        "log": hole.log or None,
        "default": hole.default_value,
    }
    for name, extra in extras.items():
        if extra is not None:
            args.append(ast.Arg(ast.Name(name), _value(extra, aliases)))
    name = "int" if isinstance(hole, IntRange) else "float"
    return ast.Call(ast.Name(name), tuple(args))
