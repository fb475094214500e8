"""Translate original Archon JSON architecture configs to ``.pipe`` text and back.

Both directions follow Archon's execution model (:mod:`archon.interop.archon_schema`): every
component of a layer reads what the previous layer left, and a layer that writes candidates
replaces them. Import writes one node per component, labelled ``l{layer}_{type}{index}``, with
explicit inputs: each node reads the candidates (and tests) of the latest layer that wrote
some, so a second layer of generators replaces the first one's candidates, and fusers beside
generators fuse the previous layer's candidates. Calls whose results no later layer reads are
kept, so the pipeline costs what Archon spends, and each such place gets a ``W602`` warning.
Keys with no equivalent here are never dropped silently: each becomes a ``W601`` warning
naming the key and the file, and is kept in a comment block at the top of the written
``.pipe``. Export (:func:`export_config`) writes the layers Archon would run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archon.dsl import ast
from archon.dsl.limits import NumberTooLarge, json_numbers
from archon.dsl.printer import print_file
from archon.errors import Diagnostic, Severity, suggest
from archon.interop.archon_export import export_config
from archon.interop.archon_schema import (
    KINDS,
    KNOWN_UNMAPPED,
    MODEL_TYPES,
    OPTIONS,
    READS_CANDIDATES,
    READS_TESTS,
    STRUCTURAL,
    WRITES_TESTS,
    ArchonConfigError,
)

__all__ = [
    "KINDS",
    "MODEL_TYPES",
    "ArchonConfigError",
    "ImportResult",
    "export_config",
    "import_config",
    "import_file",
]

_PAIR_RM = "llm-blender/PairRM"


@dataclass
class ImportResult:
    """The translated pipeline text and the warnings raised on the way."""

    text: str
    warnings: list[Diagnostic] = field(default_factory=list)


@dataclass
class _Translator:
    path: str
    warnings: list[Diagnostic] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def warn(self, where: str, message: str, hint: str | None = None) -> None:
        self.warnings.append(
            Diagnostic(
                code="W601",
                severity=Severity.WARNING,
                message=f"{self.path}: {where}: {message}",
                hint=hint,
            )
        )

    def model(self, component: Mapping[str, Any], where: str) -> str:
        name = str(component.get("model", ""))
        model_type = component.get("model_type")
        if model_type is None:
            return name
        prefix = MODEL_TYPES.get(str(model_type))
        if prefix is None:
            self.warn(
                where,
                f"unknown model_type '{model_type}'; model used as written",
                suggest(str(model_type), MODEL_TYPES),
            )
            return name
        return f"{prefix}/{name}"

    def component(
        self, component: Any, label: str, inputs: Sequence[str], where: str
    ) -> ast.LayerStmt | None:
        if not isinstance(component, Mapping) or "type" not in component:
            self.warn(where, "component is not an object with a 'type'; skipped")
            self.kept.append(f"{where}: {json.dumps(component)}")
            return None
        kind_name = str(component["type"])
        if kind_name not in KINDS:
            self.warn(
                where, f"unknown component type '{kind_name}'; skipped", suggest(kind_name, KINDS)
            )
            self.kept.append(f"{where}: {json.dumps(component)}")
            return None
        if kind_name == "ranker" and component.get("model") == _PAIR_RM:
            self.warn(
                where,
                f"{_PAIR_RM} is a reward model Archon runs in-process; rank() here asks a chat"
                " model to rank, so this ranker needs a chat model in its place",
            )
        options = OPTIONS[kind_name]
        args: list[ast.Arg] = []
        for key, value in component.items():
            if key in STRUCTURAL:
                continue
            if key in options:
                param = options[key]
                if key == "model":
                    model = self.model(component, where)
                    literal: ast.Value = ast.Str(model)
                    if param == "models":
                        literal = ast.ListValue((literal,))
                    args.append(ast.Arg(ast.Name(param), literal))
                else:
                    args.append(ast.Arg(ast.Name(param), _literal(value)))
                continue
            known = key in KNOWN_UNMAPPED
            self.warn(
                where,
                f"{'option' if known else 'unknown key'} '{key}' of {kind_name} has no equivalent;"
                " kept as a comment",
                None if known else suggest(key, [*options, *KNOWN_UNMAPPED]),
            )
            self.kept.append(f"{where} ({label}): {key} = {json.dumps(value)}")
        return ast.LayerStmt(
            call=ast.Call(ast.Name(KINDS[kind_name]), tuple(args)),
            label=ast.Name(label),
            inputs=tuple(ast.Name(i) for i in inputs) or None,
        )


def _literal(value: Any) -> ast.Value:
    if isinstance(value, bool):
        return ast.Bool(value)
    if isinstance(value, int | float):
        return ast.Num(value)
    if isinstance(value, list):
        return ast.ListValue(tuple(_literal(v) for v in value))
    return ast.Str(str(value))


def _layers(config: Mapping[str, Any], translator: _Translator) -> list[list[Any]]:
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ArchonConfigError(f"{translator.path}: expected a 'layers' list")
    result: list[list[Any]] = []
    for index, layer in enumerate(layers, start=1):
        if isinstance(layer, list):
            result.append(layer)
        elif isinstance(layer, Mapping) and isinstance(layer.get("models"), list):
            for key in layer:
                if key not in ("models", "branches"):
                    translator.warn(f"layer {index}", f"unknown key '{key}'; kept as a comment")
                    translator.kept.append(f"layer {index}: {key} = {json.dumps(layer[key])}")
            result.append(list(layer["models"]))
        elif isinstance(layer, Mapping) and "type" in layer:
            raise ArchonConfigError(
                f"{translator.path}: layer {index} is a single component; Archon expects a list"
                " of components (write it as [{...}]) and fails on this config too"
            )
        else:
            raise ArchonConfigError(
                f"{translator.path}: layer {index} is neither a list of components nor an"
                " object with 'models'"
            )
    return result


@dataclass
class _Flow:
    """Archon's state between layers, as node labels: whose candidates and tests it holds."""

    translator: _Translator
    candidates: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    read: set[str] = field(default_factory=set)
    layer_of: dict[str, int] = field(default_factory=dict)
    replaced_by: dict[str, int] = field(default_factory=dict)

    def layer(self, number: int, components: Sequence[Any]) -> list[ast.LayerStmt]:
        """The statements of one Archon layer; then the state the next layer reads."""
        where = f"layer {number}"
        if not components:
            self.translator.warn(where, "empty layer (Archon passes the state through); skipped")
        statements: list[ast.LayerStmt] = []
        written: dict[str, list[str]] = {"candidates": [], "tests": [], "critiques": []}
        for index, component in enumerate(components, start=1):
            archon_type = component.get("type") if isinstance(component, Mapping) else None
            label = f"l{number}_{archon_type or 'component'}{index}"
            inputs = self._inputs(str(archon_type), f"{where}, component {index}")
            statement = self.translator.component(component, label, inputs, where)
            if statement is None:
                continue
            statements.append(statement)
            self.read.update(inputs)
            self.layer_of[label] = number
            written[_writes(str(archon_type))].append(label)
        self._update(number, written)
        return statements

    def _inputs(self, archon_type: str, where: str) -> list[str]:
        inputs: list[str] = []
        if archon_type in READS_CANDIDATES:
            if not self.candidates:
                raise ArchonConfigError(
                    f"{self.translator.path}: {where}: a {archon_type} reads the candidates of"
                    " the layers before it, but none wrote any (Archon fails here too); put a"
                    " layer of generators first"
                )
            inputs += self.candidates
        if archon_type in READS_TESTS:
            if not self.tests:
                raise ArchonConfigError(
                    f"{self.translator.path}: {where}: a {archon_type} reads unit tests, but no"
                    " earlier layer has a unit_test_generator (Archon fails here too)"
                )
            inputs += self.tests
        return inputs

    def _update(self, number: int, written: dict[str, list[str]]) -> None:
        candidates, critics = written["candidates"], written["critiques"]
        if critics and (candidates or len(critics) > 1):
            self.translator.warn(
                f"layer {number}",
                "Archon pairs critiques with candidates by position, and "
                + (
                    "this layer's critiques describe the previous layer's candidates, not"
                    " the new ones beside them"
                    if candidates
                    else "several critics in one layer give one critique too many per candidate"
                )
                + f"; later layers read {'the new candidates' if candidates else critics[0]}",
            )
        candidates = candidates or critics[:1]
        if candidates:
            for label in self.candidates:
                if label not in self.read:
                    self.replaced_by.setdefault(label, number)
            self.candidates = candidates
        self.tests = written["tests"] or self.tests

    def report_waste(self, output: str) -> None:
        """A W602 warning for each layer whose results no later layer reads."""
        unread: dict[int, list[str]] = {}
        for label, number in self.layer_of.items():
            if label not in self.read and label != output:
                unread.setdefault(number, []).append(label)
        for number, labels in sorted(unread.items()):
            self.translator.warnings.append(
                Diagnostic(
                    code="W602",
                    severity=Severity.WARNING,
                    message=f"{self.translator.path}: layer {number}: {self._why(labels, output)};"
                    " Archon makes these calls anyway, and the imported pipeline keeps them so"
                    " that it costs the same",
                    hint="delete these components to save their calls",
                )
            )

    def _why(self, labels: list[str], output: str) -> str:
        names = ", ".join(labels)
        replaced = {self.replaced_by[label] for label in labels if label in self.replaced_by}
        if replaced:
            first = min(replaced)
            return f"layer {first} replaces the candidates of {names} before any layer reads them"
        if all(self.layer_of.get(label) == self.layer_of.get(output) for label in labels):
            return (
                f"Archon answers with a random candidate of this layer; the imported pipeline"
                f" answers with the first candidate of {output}, so {names} go unread"
            )
        return f"no later layer reads the output of {names}"


def _writes(archon_type: str) -> str:
    """Which part of Archon's state a component of ``archon_type`` writes."""
    if archon_type in WRITES_TESTS:
        return "tests"
    return "critiques" if archon_type == "critic" else "candidates"


def import_config(config: Mapping[str, Any], path: str = "<config>") -> ImportResult:
    """Translate an Archon config (already parsed JSON) into ``.pipe`` text."""
    if not isinstance(config, Mapping):
        raise ArchonConfigError(f"{path}: expected a JSON object with 'name' and 'layers'")
    translator = _Translator(path)
    for key in config:
        if key not in ("name", "layers"):
            translator.warn("top level", f"unknown key '{key}'; kept as a comment")
            translator.kept.append(f"top level: {key} = {json.dumps(config[key])}")
    name = _identifier(str(config.get("name") or Path(path).stem or "imported"))
    flow = _Flow(translator)
    statements: list[ast.Stmt] = []
    for number, layer in enumerate(_layers(config, translator), start=1):
        statements.extend(flow.layer(number, layer))
    if not flow.candidates:
        raise ArchonConfigError(f"{path}: no component writes candidates, so there is no answer")
    flow.report_waste(flow.candidates[-1])
    statements = _end_with_candidates(statements, flow.candidates)
    file = ast.File((ast.PipelineDef(ast.Name(name), tuple(statements)),))
    header = [f"# Imported from {Path(path).name} (Archon architecture config)."]
    if translator.kept:
        header.append("# Kept from the original, with no equivalent in archon:")
        header.extend(f"#   {line}" for line in translator.kept)
    return ImportResult("\n".join(header) + "\n\n" + print_file(file), translator.warnings)


def _end_with_candidates(statements: list[ast.Stmt], candidates: list[str]) -> list[ast.Stmt]:
    """The last statement is the output: make sure it is one that produces candidates."""
    last = statements[-1]
    if isinstance(last, ast.LayerStmt) and last.label is not None and last.label.text in candidates:
        return statements
    output = candidates[-1]
    moved = [
        s for s in statements if isinstance(s, ast.LayerStmt) and s.label and s.label.text == output
    ]
    return [s for s in statements if s not in moved] + moved


def _identifier(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in text).strip("_") or "imported"
    return cleaned if not cleaned[0].isdigit() else f"p_{cleaned}"


MAX_CONFIG_BYTES = 10_000_000  # Archon configs are a few kilobytes


def import_file(path: str | Path) -> ImportResult:
    """Read and translate an Archon JSON config file."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ArchonConfigError(
                f"{path}: {size:,} bytes is too large for an Archon config"
                f" (the limit is {MAX_CONFIG_BYTES:,})"
            )
        config = json_numbers(Path(path).read_bytes().decode("utf-8"))
    except NumberTooLarge as error:
        raise ArchonConfigError(f"{path}: {error}") from None
    except OSError as error:
        raise ArchonConfigError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ArchonConfigError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset"
            f" {error.start}); an Archon config is a JSON file"
        ) from error
    except json.JSONDecodeError as error:
        raise ArchonConfigError(
            f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}"
        ) from error
    except RecursionError as error:
        raise ArchonConfigError(f"{path}: the JSON is nested too deeply") from error
    return import_config(config, str(path))
