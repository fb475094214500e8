"""Options that several commands take, declared once so that their flags and help read the
same everywhere (``from archon.cli import options as opt``).

Two forms:

* a single option is an ``Annotated`` alias for a command parameter whose default stays in the
  signature (``seed: opt.Seed = 0``);
* a group of options is a frozen dataclass (:class:`FlagGroup`) whose fields are declared like
  parameters. A command decorated with :func:`grouped` takes the group as one parameter
  (``budget: opt.BudgetFlags``); the decorator shows typer the group's fields as options and
  hands the function one object built from them. ``Annotated[opt.BudgetFlags, opt.use(...)]``
  picks the fields a command takes and the old spellings it still accepts.

The vocabulary of the commands that run pipelines (run, eval, search, serve):

* ``--budget-calls``/``-tokens``/``-usd``/``-seconds`` (:class:`BudgetFlags`): totals of the
  whole command, over every query (a search: every trial; a server: every request, renewed
  every ``--budget-window``). The ``.pipe``'s own ``budget { ... }`` limits each query, and
  search's ``--max-calls-per-query`` / ``--max-mean-calls`` are per-query ceilings: a
  ``--max-...`` flag limits one query, a ``--budget-...`` flag the whole command.
* ``--cache/--no-cache`` and ``--bank`` (:class:`CacheFlags`).
* ``--allow-key``, ``--timeout``, ``--retries`` and ``--model-path`` (:class:`ConnectionFlags`).
* ``--seed`` (:data:`Seed`).

An old spelling stays a hidden alias that prints one deprecation line on stderr
(:func:`use`'s ``deprecated``). To give every such command one more shared option, add an
``Annotated`` alias here and a parameter to each command, or a field to a group.

This module imports nothing but typer and the standard library: ``archon check`` loads it too.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import typer
from typer.models import OptionInfo

AllowKey = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-key",
        metavar="VAR[@HOST[:PORT]]",
        help="Confirm that $VAR (named by an api_key_env of the .pipe) may be sent to HOST"
        " (any host without @); repeatable. Also read from $ARCHON_HOME/keys.toml.",
    ),
]
"""``--allow-key``: key grants for the models the command reaches (see ``Connection``)."""

Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Limit of one model call attempt (default 300); connecting gets at most 10 s.",
    ),
]
"""``--timeout``: the per-attempt limit of a model call."""

Retries = Annotated[
    int | None,
    typer.Option("--retries", help="Extra attempts after a retryable failure (default 4)."),
]
"""``--retries``: extra attempts after a retryable model-call failure."""

Params = Annotated[
    Path | None, typer.Option(help="JSON hole values (e.g. the best.json of a search).")
]
"""``--params``: a JSON file of hole values for a single pipeline."""

ModelPath = Annotated[Path | None, typer.Option(help="GGUF file to use for every local/... model.")]
"""``--model-path``: one GGUF file that serves every ``local/...`` model."""

Seed = Annotated[int, typer.Option(help="Run seed (sampling seeds derive from it).")]
"""``--seed``: the run seed of ``run``, ``eval``, ``search`` (its sampler too) and ``serve`` (of
requests that send none)."""

Metric = Annotated[str | None, typer.Option(help="Metric name (default: the dataset's).")]
"""``--metric``: the metric of ``eval`` and ``search``."""

Trace = Annotated[
    Path | None, typer.Option(help="Append one JSON line per model call to this file.")
]
"""``--trace``: a JSONL file that gets one line per model call."""

Otel = Annotated[
    bool,
    typer.Option(
        "--otel",
        help="Send OpenTelemetry spans (run -> node -> model call) over OTLP/HTTP to"
        " $OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318); on without the flag when that"
        " variable is set. Needs the `otel` extra; see docs/observability.md.",
    ),
]
"""``--otel``: export OpenTelemetry spans (the endpoint variable alone turns it on too)."""

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
"""``--json`` of the small listing commands (models, cache)."""

Banks = Annotated[
    list[Path] | None,
    typer.Option(
        "--bank",
        metavar="FILE",
        help="A bank of calls (archon cache export) to draw on before calling a model;"
        " repeatable. Only calls it lacks are paid for.",
    ),
]
"""``--bank``: candidate banks the call cache consults for keys it lacks."""


# --- option groups --------------------------------------------------------------------------


class FlagGroup:
    """Base of an option group: a frozen dataclass whose fields are annotated like command
    parameters (``Annotated[T, typer.Option(...)]``, default after ``=``).

    A field's flag is its own declaration, else ``--field-name`` (``--x/--no-x`` for a bool).
    ``panel``: the ``--help`` panel the group's options are listed under (None: Options).
    """

    panel: ClassVar[str | None] = None


@dataclass(frozen=True)
class Use:
    """How one command takes a group (``Annotated[Group, use(...)]``).

    Attributes:
        only: the fields the command offers (None: all); the others keep their defaults.
        deprecated: field name -> old flags that still set it, hidden, with a warning.
    """

    only: tuple[str, ...] | None = None
    deprecated: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def use(*only: str, **deprecated: str | tuple[str, ...]) -> Use:
    """``use("calls", "usd", calls="--max-calls")``: the fields offered (none named: all) and
    each field's old spellings."""
    return Use(
        only or None,
        {name: (old,) if isinstance(old, str) else old for name, old in deprecated.items()},
    )


@dataclass(frozen=True)
class BudgetFlags(FlagGroup):
    """``--budget-*``: totals of the whole command, over every query (see the module doc)."""

    panel: ClassVar[str | None] = "Budget (whole command)"

    calls: Annotated[
        int | None,
        typer.Option(
            "--budget-calls", help="Model calls in all, over every query (cache hits are free)."
        ),
    ] = None
    tokens: Annotated[
        int | None, typer.Option("--budget-tokens", help="Tokens in all, over every query.")
    ] = None
    usd: Annotated[
        float | None, typer.Option("--budget-usd", help="US dollars in all, over every query.")
    ] = None
    seconds: Annotated[
        float | None,
        typer.Option("--budget-seconds", help="Wall-clock seconds in all, over every query."),
    ] = None

    def items(self) -> dict[str, int | float]:
        """The limits that are set, by field name (``calls``, ``tokens``, ``usd``, ``seconds``)."""
        values = dataclasses.asdict(self)
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class CacheFlags(FlagGroup):
    """``--cache/--no-cache`` and ``--bank``: the persistent call cache and its banks."""

    panel: ClassVar[str | None] = "Cache"

    enabled: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache", help="Read and write the call cache in the archon home."
        ),
    ] = True
    banks: Banks = None


@dataclass(frozen=True)
class ConnectionFlags(FlagGroup):
    """How the command reaches its models: key grants, per-attempt timeout, retries and the
    GGUF file of ``local/...`` models (``archon.runtime.Connection`` plus ``model_path``)."""

    panel: ClassVar[str | None] = "Connection"

    allow_keys: AllowKey = None
    timeout: Timeout = None
    retries: Retries = None
    model_path: ModelPath = None


@dataclass(frozen=True)
class _Field:
    """One group field as the command line sees it."""

    parameter: str  # the name in the typer-visible signature
    field: str
    flag: str  # its first flag, for messages
    default: Any


@dataclass(frozen=True)
class _Alias:
    parameter: str
    field: str
    flag: str


@dataclass(frozen=True)
class _Expansion:
    """A group parameter of a command and the options it became."""

    name: str
    group: type[FlagGroup]
    fields: tuple[_Field, ...]
    aliases: tuple[_Alias, ...]

    def build(self, kwargs: dict[str, Any]) -> FlagGroup:
        values = {f.field: kwargs.pop(f.parameter) for f in self.fields}
        flags = {f.field: f for f in self.fields}
        for alias in self.aliases:
            old = kwargs.pop(alias.parameter)
            if old is None:
                continue
            canonical = flags[alias.field]
            if values[alias.field] != canonical.default:
                typer.echo(f"error: give {canonical.flag} or {alias.flag}, not both", err=True)
                raise typer.Exit(2)
            typer.echo(
                f"warning: {alias.flag} is deprecated; use {canonical.flag}"
                " (the old spelling goes in a later release)",
                err=True,
            )
            values[alias.field] = old
        return self.group(**values)


def _group_of(hint: Any) -> tuple[type[FlagGroup], Use] | None:
    """The group and its :class:`Use` when ``hint`` names a :class:`FlagGroup`."""
    use_ = Use()
    if typing.get_origin(hint) is Annotated:
        hint, *extras = typing.get_args(hint)
        use_ = next((e for e in extras if isinstance(e, Use)), use_)
    if isinstance(hint, type) and issubclass(hint, FlagGroup):
        return hint, use_
    return None


def _option_of(hint: Any) -> tuple[Any, OptionInfo]:
    """``(T, OptionInfo)`` of a group field's ``Annotated[T, typer.Option(...)]``."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, OptionInfo):
                return base, extra
    raise TypeError(f"a group field must be Annotated[T, typer.Option(...)], not {hint!r}")


def _flags(name: str, base: Any, info: OptionInfo) -> tuple[str, ...]:
    """A field's declared flags (the first positional of ``typer.Option`` included)."""
    declared = (() if info.default is ... else (str(info.default),)) + tuple(info.param_decls or ())
    if declared:
        return declared
    flag = "--" + name.replace("_", "-")
    return (f"{flag}/--no-{flag[2:]}",) if base is bool else (flag,)


def _expand(
    name: str, group: type[FlagGroup], use_: Use
) -> tuple[_Expansion, list[inspect.Parameter]]:
    """The typer-visible parameters of group parameter ``name``."""
    hints = typing.get_type_hints(group, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(group)}  # type: ignore[arg-type]
    unknown = set(use_.only or ()) | set(use_.deprecated)
    if unknown - set(fields):
        raise TypeError(f"{group.__name__} has no field(s) {sorted(unknown - set(fields))}")
    shown, aliases, parameters = [], [], []
    for field_name in use_.only or tuple(fields):
        field = fields[field_name]
        base, info = _option_of(hints[field_name])
        info = copy(info)
        flags = _flags(field_name, base, info)
        info.default, info.param_decls = ..., flags
        if info.rich_help_panel is None:
            info.rich_help_panel = group.panel
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        parameter = f"{name}__{field_name}"
        parameters.append(
            inspect.Parameter(
                parameter,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[base, info],
            )
        )
        shown.append(_Field(parameter, field_name, flags[0].split("/")[0], field.default))
        for i, old in enumerate(use_.deprecated.get(field_name, ())):
            hidden = typer.Option(old, hidden=True, help=f"Deprecated: use {shown[-1].flag}.")
            alias = f"{parameter}__old{i}"
            parameters.append(
                inspect.Parameter(
                    alias,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[base | None, hidden],
                )
            )
            aliases.append(_Alias(alias, field_name, old))
    return _Expansion(name, group, tuple(shown), tuple(aliases)), parameters


_R = TypeVar("_R")


def grouped(command: Callable[..., _R]) -> Callable[..., _R]:
    """Let ``command`` take option groups as parameters (see :class:`FlagGroup`).

    Typer sees a signature in which each group parameter is replaced by the group's options
    (keyword-only, named ``<parameter>__<field>``); the wrapper builds the group from them and
    calls ``command`` with one object per group. ``inspect.unwrap`` gives ``command`` back.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    expansions: list[_Expansion] = []
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        hint = hints.get(parameter.name, parameter.annotation)
        found = _group_of(hint)
        if found is None:
            parameters.append(
                parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint)
            )
            continue
        expansion, expanded = _expand(parameter.name, *found)
        expansions.append(expansion)
        parameters.extend(expanded)
    names = [p.name for p in parameters]
    if len(set(names)) != len(names):
        raise TypeError(f"{command.__name__}: two options share a parameter name")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> _R:
        for expansion in expansions:
            kwargs[expansion.name] = expansion.build(kwargs)
        return command(**kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", None)
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    wrapper.__annotations__["return"] = hints.get("return", None)
    return wrapper
