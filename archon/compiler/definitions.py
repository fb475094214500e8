"""Collecting ``models``, ``prompts`` and ``block`` definitions (the main file and imports).

:class:`Definer` also owns the diagnostics list and the prompt-file reader shared with the
statement lowering in :mod:`archon.compiler.lower`, which extends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archon.compiler.load import LoadedFile, resolve_relative
from archon.compiler.lower_values import LoweringFailed, ValueLowerer, ValueScope
from archon.compiler.scopes import Definitions
from archon.dsl import ast
from archon.errors import Diagnostic, Severity
from archon.ir import ModelSpec, Param, model_option_problem, url_has_credentials
from archon.layers.registry import Registry
from archon.source import Span

ReadRelative = Callable[[str, str], str]
"""(base .pipe path, relative path) -> file text; raises OSError."""


class Definer:
    """Reports diagnostics, reads prompt files and collects top-level definitions."""

    def __init__(self, registry: Registry, read_relative: ReadRelative) -> None:
        self.registry = registry
        self.read_relative = read_relative
        self.diagnostics: list[Diagnostic] = []
        self._current_path = ""
        self.values = ValueLowerer(self.diagnostics, self._read_file)

    def error(
        self, code: str, message: str, span: Span | None, hint: str | None = None, **extra: object
    ) -> None:
        self.diagnostics.append(
            Diagnostic(code=code, message=message, span=span, hint=hint, **extra)
        )

    def warning(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(code=code, message=message, span=span, hint=hint, severity="warning")
        )

    def _read_file(self, path: ast.Str) -> str | None:
        try:
            return self.read_relative(self._current_path, path.value)
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not valid UTF-8"
            target = resolve_relative(self._current_path, path.value)
            self.error(
                "E503",
                f"cannot read prompt file '{path.value}': {reason or error}",
                path.span,
                f"the path is relative to the .pipe file ({target})",
            )
            return None

    def definitions(self, files: Sequence[LoadedFile]) -> Definitions:
        defs = Definitions()
        for loaded in files:
            path = loaded.path
            self._current_path = path
            for item in loaded.file.items:
                if isinstance(item, ast.ModelsBlock):
                    for binding in item.entries:
                        self._model(binding, defs)
                elif isinstance(item, ast.PromptsBlock):
                    for binding in item.entries:
                        self._prompt(binding, defs)
                elif isinstance(item, ast.BlockDef) and self._define(item.name, defs):
                    defs.blocks[item.name.text] = (item, path)
        self._check_model_options(defs)
        return defs

    def _check_model_options(self, defs: Definitions) -> None:
        """Warn when two aliases name one model string with different options.

        Parameters hold model strings, not aliases, and the runtime looks options up by
        model string, so only one of the option sets can apply.
        """
        first: dict[str, ModelSpec] = {}
        for spec in defs.models.values():
            seen = first.setdefault(spec.model, spec)
            if seen is not spec and _options(seen) != _options(spec):
                self.diagnostics.append(
                    Diagnostic(
                        code="W215",
                        severity=Severity.WARNING,
                        message=f"aliases '{seen.alias}' and '{spec.alias}' name the same model"
                        f' "{spec.model}" with different options; only one set can apply',
                        span=spec.span,
                        hint="give the models distinct names (e.g. an OpenAI-compatible server"
                        " can serve the same weights under two names)",
                    )
                )

    def _define(self, name: ast.Name, defs: Definitions) -> bool:
        if name.text in defs.spans:
            first = defs.spans[name.text]
            self.error(
                "E207",
                f"'{name.text}' is defined twice",
                name.span,
                "rename one of them",
                notes=(f"first defined at {first}",),
            )
            return False
        if name.text in self.registry:
            self.error(
                "E207",
                f"'{name.text}' is already the name of a layer kind",
                name.span,
                "choose another name",
            )
            return False
        defs.spans[name.text] = name.span
        return True

    def _model(self, binding: ast.Binding, defs: Definitions) -> None:
        if not self._define(binding.name, defs):
            return
        value = binding.value
        alias = binding.name.text
        if isinstance(value, ast.Str):
            defs.models[alias] = ModelSpec(alias=alias, model=value.value, span=binding.span)
        elif isinstance(value, ast.Ref) and value.name in defs.models:
            original = defs.models[value.name]
            defs.models[alias] = original.model_copy(update={"alias": alias, "span": binding.span})
        elif isinstance(value, ast.Call) and value.name.text == "model":
            self._model_call(alias, value, binding.span, defs)
        else:
            self.error(
                "E213",
                f"model alias '{alias}' must be a string or model(\"provider/name\", ...)",
                value.span,
                f'e.g. {alias} = "openai/gpt-4o-mini"',
            )
        if alias not in defs.models:
            # Keep the name defined so that its uses are not reported as unknown too.
            defs.models[alias] = ModelSpec(alias=alias, model=f"<invalid model {alias}>")

    def _model_call(self, alias: str, call: ast.Call, span: Span, defs: Definitions) -> None:
        positional = [a for a in call.args if a.name is None]
        if len(positional) != 1 or not isinstance(positional[0].value, ast.Str):
            self.error(
                "E213",
                "model() takes the model string first",
                call.span,
                'e.g. model("openai/qwen", api_base = "http://127.0.0.1:8000/v1")',
            )
            return
        options: list[Param] = []
        for arg in call.args:
            if arg.name is None:
                continue
            try:
                value = self.values.concrete(arg.value, ValueScope())
            except LoweringFailed:
                continue
            refused = model_option_problem(arg.name.text, value)
            if refused is not None:
                # E316: a credential (a literal key, a password in a URL); E317: any other
                # option a shared file may not set.
                credential = arg.name.text == "api_key" or (
                    isinstance(value, str) and url_has_credentials(value)
                )
                code = "E316" if credential else "E317"
                self.error(code, f"model '{alias}': {refused[0]}", arg.name.span, refused[1])
                continue
            options.append(Param(name=arg.name.text, value=value, span=arg.span))
        defs.models[alias] = ModelSpec(
            alias=alias, model=positional[0].value.value, options=tuple(options), span=span
        )

    def _prompt(self, binding: ast.Binding, defs: Definitions) -> None:
        if not self._define(binding.name, defs):
            return
        scope = ValueScope(prompts=defs.prompts)
        name = binding.name.text
        # A placeholder keeps the name defined if the value is broken (reported once, here).
        defs.prompts[name] = f"<invalid prompt {name}>"
        try:
            value = self.values.concrete(binding.value, scope)
        except LoweringFailed:
            return
        if not isinstance(value, str):
            self.error(
                "E213",
                f"prompt '{name}' must be a string or file(...)",
                binding.value.span,
                f'e.g. {name} = "You are a careful judge." or {name} = file("{name}.txt")',
            )
            return
        defs.prompts[name] = value


def _options(spec: ModelSpec) -> dict[str, object]:
    return {param.name: param.value for param in spec.options}
