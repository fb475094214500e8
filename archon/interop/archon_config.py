"""Translate original Archon JSON architecture configs to ``.pipe`` text and back.

An Archon config is ``{"name": str, "layers": [...]}``; each layer is a list of components
(or, in older files, ``{"branches": int, "models": [components]}``) that all run on the
previous layer's output. A component has a ``type`` (generator, critic, ranker, fuser,
verifier, unit_test_generator, unit_test_evaluator), a ``model`` and ``model_type`` (mapped to
a litellm provider prefix) and per-type options.

Import writes one node per component, labelled ``l{layer}_{type}{index}``, with explicit
inputs, so the layer structure survives; Archon's generators and fusers run on the previous
layer's candidates, and a unit-test generator produces tests that the next evaluator reads
together with the candidates. Keys with no equivalent here are never dropped silently: each
becomes a warning naming the key and the file, and is kept in a comment block at the top of
the written ``.pipe``. Export walks a concrete pipeline by dataflow depth and writes one
Archon layer per depth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archon.dsl import ast
from archon.dsl.printer import print_file
from archon.errors import ArchonError, Diagnostic, Severity, suggest
from archon.ir import Pipeline, Value, is_hole

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

# Archon option -> layer parameter, per component type ("models" means a one-model list).
_COMMON = {"temperature": "temperature", "max_tokens": "max_tokens"}
_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "generator": {**_COMMON, "model": "models", "samples": "samples"},
    "critic": {**_COMMON, "model": "model"},
    "ranker": {**_COMMON, "model": "model", "top_k": "top_k", "use_critiques": "use_critiques"},
    "fuser": {**_COMMON, "model": "models", "samples": "samples"},
    "verifier": {**_COMMON, "model": "model"},
    "unit_test_generator": {**_COMMON, "model": "model", "unit_test_cap": "num_tests"},
    "unit_test_evaluator": {**_COMMON, "model": "model", "top_k": "top_k"},
}
# Archon options understood but with no equivalent parameter: kept as comments, with a warning.
_KNOWN_UNMAPPED = frozenset(
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
_STRUCTURAL = frozenset({"type", "model_type"})


class ArchonConfigError(ArchonError):
    """The file is not an Archon architecture config."""


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
        options = _OPTIONS[kind_name]
        args: list[ast.Arg] = []
        for key, value in component.items():
            if key in _STRUCTURAL:
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
            known = key in _KNOWN_UNMAPPED
            self.warn(
                where,
                f"{'option' if known else 'unknown key'} '{key}' of {kind_name} has no equivalent;"
                " kept as a comment",
                None if known else suggest(key, [*options, *_KNOWN_UNMAPPED]),
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
        else:
            raise ArchonConfigError(
                f"{translator.path}: layer {index} is neither a list nor an object"
            )
    return result


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
    statements: list[ast.Stmt] = []
    candidates: list[str] = []
    tests: list[str] = []
    for layer_index, layer in enumerate(_layers(config, translator), start=1):
        new_candidates: list[str] = []
        new_tests: list[str] = []
        for index, component in enumerate(layer, start=1):
            kind_name = component.get("type") if isinstance(component, Mapping) else None
            label = f"l{layer_index}_{kind_name or 'component'}{index}"
            reads_tests = kind_name == "unit_test_evaluator"
            consumes_nothing = kind_name in ("generator", "unit_test_generator")
            inputs = [] if consumes_nothing else candidates + (tests if reads_tests else [])
            statement = translator.component(component, label, inputs, f"layer {layer_index}")
            if statement is None:
                continue
            statements.append(statement)
            (new_tests if kind_name == "unit_test_generator" else new_candidates).append(label)
        # A unit-test generator layer leaves the candidates as they were and adds tests.
        candidates = new_candidates or candidates
        tests = new_tests or tests
    if not statements:
        raise ArchonConfigError(f"{path}: no components to translate")
    statements = _end_with_candidates(statements, candidates)
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
        config = json.loads(Path(path).read_bytes().decode("utf-8"))
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


# --- export ---------------------------------------------------------------------------------

_TYPES = {kind: archon_type for archon_type, kind in KINDS.items()}
_PREFIXES = {prefix: model_type for model_type, prefix in MODEL_TYPES.items()}


def _split_model(model: str) -> dict[str, str]:
    prefix, _, name = model.partition("/")
    if name and prefix in _PREFIXES:
        return {"model": name, "model_type": _PREFIXES[prefix]}
    return {"model": model}


def export_config(pipeline: Pipeline) -> dict[str, Any]:
    """An Archon config for a concrete pipeline: one Archon layer per dataflow depth."""
    if pipeline.switches or any(is_hole(p.value) for n in pipeline.nodes for p in n.params):
        raise ArchonConfigError(
            f"pipeline '{pipeline.name}' has holes; assign them first (archon run --params)"
        )
    layers_of = _archon_layer_numbers(pipeline)
    layers: dict[int, list[dict[str, Any]]] = {}
    for node in pipeline.nodes:
        if node.kind not in _TYPES:
            raise ArchonConfigError(f"layer kind '{node.kind}' has no Archon equivalent")
        layers.setdefault(layers_of[node.id], []).extend(_components(node.kind, node.arguments()))
    return {"name": pipeline.name, "layers": [layers[d] for d in sorted(layers)]}


def _archon_layer_numbers(pipeline: Pipeline) -> dict[str, int]:
    """Archon layer (1-based) of each node: one past its deepest input.

    Archon runs a unit-test generator as a layer of its own between the candidates and the
    evaluator; here it reads only the query, so it is placed in the layer just before the
    evaluator that reads its tests, which is where an Archon config has it.
    """
    test_writers = {n.id for n in pipeline.nodes if n.kind == "unit_test_generate"}
    depth: dict[str, int] = {}
    for node in pipeline.nodes:  # topological order: inputs come first
        number = 1 + max((depth[i] for i in node.inputs if i not in test_writers), default=0)
        writers = [i for i in node.inputs if i in test_writers]
        for writer in writers:
            depth[writer] = max(depth[writer], number)
        depth[node.id] = number + 1 if writers else number
    return depth


def _components(kind: str, arguments: dict[str, Value]) -> list[dict[str, Any]]:
    archon_type = _TYPES[kind]
    reverse = {param: key for key, param in _OPTIONS[archon_type].items()}
    base: dict[str, Any] = {"type": archon_type}
    models: list[str] = []
    for param, value in arguments.items():
        if param == "models":
            models = [str(m) for m in value]  # type: ignore[union-attr]
        elif param == "model":
            base.update(_split_model(str(value)))
        elif param in reverse:
            base[reverse[param]] = list(value) if isinstance(value, tuple) else value
    if not models:
        return [base]
    # One Archon component per model, in the order of the ensemble.
    return [{**base, **_split_model(model)} for model in models]
