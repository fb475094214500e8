"""Lowering: ``ast.File`` (+ imports) -> :class:`archon.ir.Pipeline`.

What happens here:

* model aliases and prompt names are resolved to their strings; ``file("...")`` is read;
* every layer call gets a stable id: its label, or ``{kind}_{ordinal}``;
* blocks are expanded inline, their node ids prefixed by the instance id (``rf.rank_1``);
* ``repeat N { ... }`` is unrolled to its maximum count (``fuse_1.1``, ``fuse_1.2``); a hole
  count becomes the switch ``repeat_1.count`` and copy *k* requires ``count >= k``;
* ``optional`` becomes the switch ``<id>.enabled`` (``choice(true, false)``);
* a layer written without ``<-`` reads, for each payload type its kind consumes, the nearest
  earlier layer producing that type (so chains need no wiring); ``<- a, b`` names inputs
  explicitly, and may refer only to layers defined earlier (the text order is the dataflow
  order, so a ``.pipe`` file cannot express a cycle).

Problems are collected as diagnostics; lowering goes on after an error to report as many as
possible in one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from archon.compiler.definitions import Definer, ReadRelative
from archon.compiler.load import Program
from archon.compiler.lower_values import IRValue, LoweringFailed, ValueScope
from archon.compiler.scopes import BodyContext, Definitions, Namespace, Output, Scope, labels_in
from archon.dsl import ast
from archon.dsl.limits import DEPTH_CODE, SourceLimits, too_many_nodes
from archon.errors import Diagnostic, suggest
from archon.ir import Budget, Choice, IntRange, Node, Param, Pipeline, Requirement, Switch, is_hole
from archon.layers.registry import Registry
from archon.source import Span
from archon.values import Payload

BUDGET_FIELDS = ("calls", "tokens", "usd", "seconds")


class _Abort(Exception):
    """Internal: the pipeline passed a size limit (already reported); lowering stops."""


def lower_program(
    program: Program,
    registry: Registry,
    read_relative: ReadRelative,
    pipeline: str | None = None,
    *,
    limits: SourceLimits | None = None,
) -> tuple[Pipeline | None, list[Diagnostic]]:
    """Lower the main file's pipeline (the only one, or the one named ``pipeline``)."""
    if any(d.is_error for d in program.diagnostics):
        # A broken import would make every name it defines "unknown": report the cause only.
        return None, []
    lowerer = _Lowerer(registry, read_relative, limits or SourceLimits())
    try:
        result = _lower(lowerer, program, pipeline)
    except _Abort:
        result = None
    return result, _unique(lowerer.diagnostics)


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop repeats: a repeat body or a block is lowered once per copy but reported once."""
    seen: set[str] = set()
    unique = []
    for diagnostic in diagnostics:
        key = diagnostic.model_dump_json()
        if key not in seen:
            seen.add(key)
            unique.append(diagnostic)
    return unique


def _lower(lowerer: _Lowerer, program: Program, pipeline: str | None) -> Pipeline | None:
    definitions = lowerer.definitions([*program.imports, program.main])
    pipelines = program.main.file.pipelines()
    if pipeline is not None:
        chosen = [p for p in pipelines if p.name.text == pipeline]
        if not chosen:
            lowerer.error(
                "E216",
                f"no pipeline named '{pipeline}' in {program.main.path}",
                None,
                suggest(pipeline, [p.name.text for p in pipelines])
                or "pipelines here: " + (", ".join(p.name.text for p in pipelines) or "none"),
            )
            return None
    elif len(pipelines) > 1:
        names = ", ".join(p.name.text for p in pipelines)
        lowerer.error(
            "E217",
            f"this file defines several pipelines ({names}); which one is meant?",
            pipelines[1].name.span,
            f"choose one with `--pipeline NAME` (e.g. --pipeline {pipelines[0].name.text})",
        )
        return None
    else:
        chosen = list(pipelines)
    for block_name, (block, path) in definitions.blocks.items():
        lowerer.check_block(block_name, block, path, definitions)
    if not chosen:
        if not program.main.file.items:
            path = program.main.path
            start = (
                None
                if path.startswith("<")
                else Span(path=path, line=1, col=1, end_line=1, end_col=2)
            )
            lowerer.error(
                "E218",
                "file defines no pipeline",
                start,
                'add one: pipeline my_pipeline { generate(models = ["local/qwen2.5-coder-0.5b"]) }',
            )
        return None
    return lowerer.pipeline(chosen[0], program.main.path, definitions)


class _Lowerer(Definer):
    """Lowers pipeline and block bodies to IR nodes, switches and a budget."""

    def __init__(
        self, registry: Registry, read_relative: ReadRelative, limits: SourceLimits
    ) -> None:
        super().__init__(registry, read_relative)
        self.limits = limits
        self.nodes: list[Node] = []
        self.switches: list[Switch] = []
        self.budget: Budget | None = None
        self._depth = 0  # bodies being lowered: repeats and block uses nest
        self._lowered = 0  # nodes built so far, block checks included

    # --- pipeline ------------------------------------------------------------------------

    def pipeline(self, pdef: ast.PipelineDef, path: str, defs: Definitions) -> Pipeline | None:
        self._current_path = path
        self.defs = defs
        context = BodyContext(
            scope=Scope(),
            values=self._value_scope({}, defs, Scope()),
            namespace=Namespace(taken=labels_in(pdef.body)),
            path=path,
        )
        context.values.node_labels = context.scope.names
        outputs = self.body(pdef.body, context, [])
        if not outputs:
            self.error(
                "E409",
                f"pipeline '{pdef.name.text}' has no layers",
                pdef.name.span,
                'add a layer, e.g. generate(models = ["local/qwen2.5-coder-0.5b"])',
            )
            return None
        if any(d.is_error for d in self.diagnostics):
            return None
        return Pipeline(
            name=pdef.name.text,
            nodes=tuple(self.nodes),
            output=outputs[-1].id,
            budget=self.budget or Budget(),
            switches=tuple(self.switches),
            models=tuple(defs.models.values()),
            span=pdef.span,
        )

    def check_block(self, name: str, block: ast.BlockDef, path: str, defs: Definitions) -> None:
        """Report errors in a block definition once, even if no pipeline uses it."""
        saved = (self.nodes, self.switches, self.budget, self._current_path)
        self.nodes, self.switches = [], []
        self.defs = defs
        self._current_path = path
        params: dict[str, IRValue] = {}
        for param in block.params:
            # Placeholders stand in for arguments; their types are checked per instance.
            params[param.name.text] = Choice(options=("<argument>",), span=param.span)
        before = len(self.diagnostics)
        context = BodyContext(
            scope=Scope(),
            values=self._value_scope(params, defs, Scope()),
            namespace=Namespace(taken=labels_in(block.body)),
            path=path,
            blocks_open=(name,),
            top_level=False,
        )
        self.body(block.body, context, [Output("<input>", None)])
        # Keep only structural problems here; value problems are reported per instance.
        self.diagnostics[before:] = [
            d for d in self.diagnostics[before:] if d.code in ("E203", "E401", "E212", "E201")
        ]
        self.nodes, self.switches, self.budget, self._current_path = saved

    def _value_scope(
        self,
        params: dict[str, IRValue],
        defs: Definitions,
        scope: Scope,
        origins: dict[str, Span] | None = None,
    ) -> ValueScope:
        return ValueScope(
            params=params,
            origins=origins or {},
            prompts=defs.prompts,
            models={alias: spec.model for alias, spec in defs.models.items()},
            node_labels=scope.names,
        )

    def body(
        self, statements: Sequence[ast.Stmt], context: BodyContext, recent: list[Output]
    ) -> list[Output]:
        """Lower statements in order; returns ``recent`` extended with their outputs."""
        recent = list(recent)
        if self._depth >= self.limits.max_depth:
            # Blocks using blocks nest without nesting in the text; each level recurses here.
            span = statements[0].span if statements else None
            self.error(
                DEPTH_CODE,
                f"blocks and repeats nest more than {self.limits.max_depth} levels deep",
                span,
                "flatten the chain of blocks that use blocks",
            )
            raise _Abort
        self._depth += 1
        try:
            for statement in statements:
                if isinstance(statement, ast.BudgetStmt):
                    self._budget(statement, context)
                elif isinstance(statement, ast.RepeatStmt):
                    recent = self._repeat(statement, context, recent)
                else:
                    recent = self._layer(statement, context, recent)
        finally:
            self._depth -= 1
        return recent

    # --- statements ----------------------------------------------------------------------

    def _budget(self, statement: ast.BudgetStmt, context: BodyContext) -> None:
        if not context.top_level:
            self.error(
                "E310",
                "a budget belongs at the top of a pipeline, not in a block or repeat",
                statement.span,
            )
            return
        if self.budget is not None:
            self.error(
                "E310", "the pipeline has two budget blocks", statement.span, "merge them into one"
            )
            return
        values: dict[str, int | float] = {}
        for entry in statement.entries:
            key = entry.name.text
            if key not in BUDGET_FIELDS:
                self.error(
                    "E311",
                    f"unknown budget '{key}'",
                    entry.name.span,
                    suggest(key, BUDGET_FIELDS) or "budgets: " + ", ".join(BUDGET_FIELDS),
                )
                continue
            if key in values:
                self.error("E311", f"budget '{key}' is given twice", entry.name.span)
                continue
            number = entry.value.value
            if number <= 0:
                self.error(
                    "E312", f"budget '{key}' must be positive, got {number}", entry.value.span
                )
                continue
            if key in ("calls", "tokens") and not isinstance(number, int):
                self.error("E312", f"budget '{key}' must be a whole number", entry.value.span)
                continue
            values[key] = number
        self.budget = Budget(**values, span=statement.span)

    def _layer(
        self, statement: ast.LayerStmt, context: BodyContext, recent: list[Output]
    ) -> list[Output]:
        name = statement.call.name.text
        base = statement.label.text if statement.label else context.namespace.auto_id(name)
        node_id = context.full_id(base)
        if statement.label is not None:
            self._check_label(statement.label, context)
        requires = context.requires
        if statement.optional:
            switch_name = f"{node_id}.enabled"
            self.switches.append(
                Switch(
                    name=switch_name,
                    kind="optional",
                    value=Choice(options=(True, False), span=statement.span),
                    span=statement.span,
                )
            )
            requires = (*requires, Requirement(switch=switch_name, at_least=1))
        explicit = self._explicit_inputs(statement, context)
        if name in self.defs.blocks:
            outputs = self._instance(statement, context, recent, base, explicit, requires)
        elif name in self.registry:
            outputs = self._node(statement, context, recent, node_id, explicit, requires)
        else:
            hint = suggest(name, [*self.registry.kinds(), *self.defs.blocks])
            self.error(
                "E203",
                f"unknown layer kind '{name}'",
                statement.call.name.span,
                hint or "see `archon kinds` for the available kinds",
            )
            outputs = [Output(node_id, None)]
        if outputs:
            # Auto ids are referable too (`<- rank_1`), though labels survive edits better.
            context.scope.labels[base] = outputs[-1]
        return [*recent, *outputs]

    def _check_label(self, label: ast.Name, context: BodyContext) -> None:
        if "." in label.text:
            self.error(
                "E205",
                f"node name '{label.text}' may not contain '.'",
                label.span,
                f"write '{label.text.replace('.', '_')}': dots separate block and repeat"
                " prefixes in node ids",
            )
        elif label.text in context.scope.labels:
            self.error(
                "E204",
                f"node name '{label.text}' is used twice",
                label.span,
                "give each node its own name",
            )

    def _explicit_inputs(
        self, statement: ast.LayerStmt, context: BodyContext
    ) -> list[Output] | None:
        if statement.inputs is None:
            return None
        outputs: list[Output] = []
        for name in statement.inputs:
            found = context.scope.lookup(name.text)
            if found is None:
                itself = statement.label is not None and name.text == statement.label.text
                if itself:
                    message = f"a node cannot read its own output ('{name.text}')"
                    hint = "inputs must name a node defined earlier in the pipeline"
                elif name.text in context.namespace.taken:
                    message = f"node '{name.text}' is defined after the node that reads it"
                    hint = (
                        f"move `{name.text} = ...` above this line: a node may read only"
                        " nodes written before it"
                    )
                else:
                    message = f"unknown node '{name.text}'"
                    hint = suggest(name.text, context.scope.names()) or (
                        "inputs must name a node defined earlier in the pipeline"
                    )
                self.error("E401", message, name.span, hint)
            else:
                outputs.append(replace(found, span=name.span))
        return outputs

    def _node(
        self,
        statement: ast.LayerStmt,
        context: BodyContext,
        recent: list[Output],
        node_id: str,
        explicit: list[Output] | None,
        requires: tuple[Requirement, ...],
    ) -> list[Output]:
        # Block definitions are lowered once on their own too (check_block): the whole
        # compile may lower twice the limit, so checking every block stays bounded.
        self._lowered += 1
        if len(self.nodes) >= self.limits.max_nodes or self._lowered > 2 * self.limits.max_nodes:
            self.diagnostics.append(too_many_nodes(self.limits, statement.span))
            raise _Abort
        layer = self.registry.get(statement.call.name.text)
        spans: dict[str, Span | None] = {}
        if explicit is not None:
            inputs = [o.id for o in explicit]
            for output in explicit:
                spans.setdefault(output.id, output.span)
        else:
            inputs = self._implicit_inputs(statement, layer.consumes, recent, layer.optional_inputs)
        params = self._params(statement.call, context)
        self.nodes.append(
            Node(
                id=node_id,
                kind=layer.kind,
                params=tuple(params),
                inputs=tuple(dict.fromkeys(inputs)),
                input_spans=tuple(spans[i] for i in dict.fromkeys(inputs)) if spans else (),
                requires=requires,
                span=statement.span,
            )
        )
        return [Output(node_id, layer.produces)]

    def _implicit_inputs(
        self,
        statement: ast.LayerStmt,
        consumes: Sequence[type[Payload]],
        recent: list[Output],
        optional: Sequence[type[Payload]] = (),
    ) -> list[str]:
        inputs: list[str] = []
        for payload in consumes:
            source = next((o for o in reversed(recent) if o.produces is payload), None)
            if source is None:
                source = next((o for o in reversed(recent) if o.produces is None), None)
            if source is None and payload in optional:
                continue
            if source is None:
                kind = statement.call.name.text
                self.error(
                    "E402",
                    f"{kind}() reads {payload.__name__} but no earlier layer produces them",
                    statement.call.name.span,
                    _missing_input_hint(payload),
                )
                continue
            inputs.append(source.id)
        return inputs

    def _params(self, call: ast.Call, context: BodyContext) -> list[Param]:
        params: list[Param] = []
        seen: set[str] = set()
        named = {a.name.text for a in call.args if a.name is not None}
        for arg in call.args:
            if arg.name is None:
                self.error(
                    "E206",
                    "layer arguments must be named",
                    arg.span,
                    self._positional_hint(call.name.text, arg, named),
                )
                continue
            if arg.name.text in seen:
                self.error(
                    "E208",
                    f"argument '{arg.name.text}' is given twice",
                    arg.name.span,
                    "keep one of them",
                )
                continue
            seen.add(arg.name.text)
            try:
                value = self.values.value(arg.value, context.values, allow_holes=True)
            except LoweringFailed:
                continue
            hole_span = arg.value.span
            if is_hole(value) and value.span != hole_span:  # a hole passed through a block param
                value = value.model_copy(update={"span": hole_span})
            # A value that came through a block parameter is shown where it was written.
            value_span = hole_span
            if isinstance(arg.value, ast.Ref):
                value_span = context.values.origins.get(arg.value.name, hole_span)
            params.append(
                Param(name=arg.name.text, value=value, span=arg.span, value_span=value_span)
            )
        return params

    def _positional_hint(self, kind: str, arg: ast.Arg, named: set[str]) -> str:
        value = _short(arg)
        if kind in self.registry:
            fields = self.registry.get(kind).Params.model_fields
            required = [n for n, f in fields.items() if f.is_required() and n not in named]
            if len(required) == 1:
                return f"write `{required[0]} = {value}`"
            return f"write `name = {value}`; {kind}() takes: {', '.join(fields)}"
        return f"write `name = {value}`"

    def _instance(
        self,
        statement: ast.LayerStmt,
        context: BodyContext,
        recent: list[Output],
        base: str,
        explicit: list[Output] | None,
        requires: tuple[Requirement, ...],
    ) -> list[Output]:
        name = statement.call.name.text
        block, path = self.defs.blocks[name]
        if name in context.blocks_open:
            self.error(
                "E212",
                f"block '{name}' uses itself",
                statement.call.name.span,
                "blocks cannot be recursive; use `repeat` to stack layers",
            )
            return []
        bound = self._block_arguments(statement.call, block, context)
        if bound is None:
            return []
        arguments, origins = bound
        saved_path = self._current_path
        self._current_path = path
        inner_scope = Scope()
        inner = BodyContext(
            scope=inner_scope,
            values=self._value_scope(arguments, self.defs, inner_scope, origins),
            namespace=Namespace(taken=labels_in(block.body)),
            path=path,
            prefix=f"{context.prefix}{base}.",
            suffix=context.suffix,
            requires=requires,
            blocks_open=(*context.blocks_open, name),
            top_level=False,
        )
        incoming = explicit if explicit is not None else recent
        outputs = self.body(block.body, inner, list(incoming))[len(incoming) :]
        self._current_path = saved_path
        if not outputs:
            self.error("E409", f"block '{name}' has no layers", block.name.span)
        return outputs

    def _block_arguments(
        self, call: ast.Call, block: ast.BlockDef, context: BodyContext
    ) -> tuple[dict[str, IRValue], dict[str, Span]] | None:
        declared = {p.name.text: p for p in block.params}
        values: dict[str, IRValue] = {}
        origins: dict[str, Span] = {}
        ok = True
        for arg in call.args:
            if arg.name is None:
                self.error("E206", "block arguments must be named", arg.span)
                ok = False
                continue
            if arg.name.text not in declared:
                self.error(
                    "E209",
                    f"block '{block.name.text}' has no parameter '{arg.name.text}'",
                    arg.name.span,
                    suggest(arg.name.text, declared)
                    or f"its parameters: {', '.join(declared) or 'none'}",
                )
                ok = False
                continue
            try:
                values[arg.name.text] = self.values.value(
                    arg.value, context.values, allow_holes=True
                )
            except LoweringFailed:
                ok = False
                continue
            origins[arg.name.text] = arg.value.span
            if isinstance(arg.value, ast.Ref):  # passed on from an enclosing block
                origins[arg.name.text] = context.values.origins.get(arg.value.name, arg.value.span)
        for param_name, param in declared.items():
            if param_name in values:
                continue
            if param.default is None:
                self.error(
                    "E210",
                    f"block '{block.name.text}' needs argument '{param_name}'",
                    call.span,
                    f"add `{param_name} = ...`",
                )
                ok = False
                continue
            try:
                values[param_name] = self.values.value(
                    param.default, self._value_scope({}, self.defs, Scope()), allow_holes=True
                )
            except LoweringFailed:
                ok = False
                continue
            origins[param_name] = param.default.span
        return (values, origins) if ok else None

    def _repeat(
        self, statement: ast.RepeatStmt, context: BodyContext, recent: list[Output]
    ) -> list[Output]:
        base = statement.label.text if statement.label else context.namespace.auto_id("repeat")
        repeat_id = context.full_id(base)
        if statement.label is not None:
            self._check_label(statement.label, context)
        count = self._repeat_count(statement, context)
        if count is None:
            return recent
        requires_switch = not isinstance(count, int)
        maximum = count if isinstance(count, int) else _max_count(count)
        if maximum > self.limits.max_nodes:
            # Unrolling would take as long as the count is large, even with an empty body.
            self.diagnostics.append(too_many_nodes(self.limits, statement.count.span))
            raise _Abort
        switch_name = f"{repeat_id}.count"
        if requires_switch:
            self.switches.append(
                Switch(
                    name=switch_name,
                    kind="repeat",
                    value=count,
                    span=statement.count.span,
                )
            )
        if maximum == 0:
            self.warning("W301", "repeat count is 0: the block never runs", statement.count.span)
        snapshot = dict(context.namespace.counters)
        after_first = snapshot
        for copy in range(1, maximum + 1):
            context.namespace.counters = dict(snapshot)
            requires = context.requires
            if requires_switch:
                requires = (*requires, Requirement(switch=switch_name, at_least=copy))
            copy_context = replace(
                context,
                scope=Scope(parent=context.scope),
                suffix=f".{copy}{context.suffix}",
                requires=requires,
                top_level=False,
            )
            copy_context.values = replace(context.values, node_labels=copy_context.scope.names)
            recent = self.body(statement.body, copy_context, recent)
            if copy == 1:
                after_first = dict(context.namespace.counters)
        context.namespace.counters = after_first
        if recent:
            # The repeat's output: its last copy's output, or what came before when it is empty.
            context.scope.labels[base] = recent[-1]
        return recent

    def _repeat_count(
        self, statement: ast.RepeatStmt, context: BodyContext
    ) -> int | IntRange | Choice | None:
        try:
            count = self.values.value(statement.count, context.values, allow_holes=True)
        except LoweringFailed:
            return None
        if isinstance(count, bool):
            count = None  # type: ignore[assignment]
        if isinstance(count, int) and count >= 0:
            return count
        if isinstance(count, IntRange) and count.low >= 0:
            return count
        if isinstance(count, Choice) and all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in count.options
        ):
            return count
        self.error(
            "E313",
            "repeat count must be a non-negative integer, int(lo, hi) or choice of integers",
            statement.count.span,
            "e.g. repeat int(0, 2) { fuse(models = [m]) }",
        )
        return None


def _max_count(count: IntRange | Choice) -> int:
    if isinstance(count, IntRange):
        return count.high
    return max(int(o) for o in count.options)  # type: ignore[arg-type]


def _missing_input_hint(payload: type[Payload]) -> str:
    if payload.__name__ == "Tests":
        return (
            "add unit_test_generate(...) before it, or name its inputs with `<- candidates, tests`"
        )
    return "add a generate(...) layer before it, or name its inputs with `<- name`"


def _short(arg: ast.Arg) -> str:
    value = arg.value
    if isinstance(value, ast.Ref):
        return value.name
    if isinstance(value, ast.Num):
        return str(value.value)
    if isinstance(value, ast.ListValue):
        return "[...]"
    if isinstance(value, ast.Str) and len(value.value) <= 40 and "\n" not in value.value:
        return f'"{value.value}"'
    return "..."
