"""``archon serve``: pipelines behind an OpenAI-compatible endpoint.

Argument parsing and printing only; the server is :mod:`archon.serve`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archon.cli import options as opt
from archon.cli.common import EXIT_RUNTIME, usage_error
from archon.cli.session import (
    assign_params,
    budget_of,
    check_connection,
    load_template,
    make_shared_client,
    open_cache,
    open_otel,
    run_env,
)
from archon.errors import ArchonError
from archon.layers import default_registry
from archon.layers.registry import Registry
from archon.runtime import CallCache, JsonlTrace
from archon.serve import (
    RunningServer,
    ServedPipeline,
    ServerBudget,
    ServeSettings,
    create_app,
    serve,
)

if TYPE_CHECKING:
    from archon.observability.otel import Otel

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the main app."""
    app.command("serve")(serve_command)


@dataclass(frozen=True)
class _Spec:
    name: str | None
    path: Path


def _split(spec: str, what: str) -> _Spec:
    """``FILE`` or ``NAME=FILE`` (a path that exists is a path, even with a ``=`` in it)."""
    name, sep, path = spec.partition("=")
    if not sep or Path(spec).exists():
        return _Spec(None, Path(spec))
    if not _NAME.fullmatch(name):
        usage_error(f"{what} '{spec}': the name before '=' may use letters, digits and ._:/-")
    return _Spec(name, Path(path))


def _params_for(specs: list[_Spec], names: list[str]) -> dict[str, Path | None]:
    """The ``--params`` file of each served name (a bare file applies to every pipeline)."""
    chosen: dict[str, Path | None] = dict.fromkeys(names)
    for spec in specs:
        if spec.name is None:
            chosen = {name: chosen[name] or spec.path for name in names}
        elif spec.name not in chosen:
            usage_error(f"--params {spec.name}=...: no pipeline is served as '{spec.name}'")
        else:
            chosen[spec.name] = spec.path
    return chosen


def _pipelines(pipes: list[str], params: list[str], registry: Registry) -> list[ServedPipeline]:
    specs = [_split(p, "pipeline") for p in pipes]
    templates = [(spec, load_template(spec.path, registry)) for spec in specs]
    names = [spec.name or template.name for spec, template in templates]
    if len(set(names)) != len(names):
        usage_error(
            f"two pipelines would be served under one name ({', '.join(names)}): use NAME=FILE"
        )
    chosen = _params_for([_split(p, "--params") for p in params], names)
    served = []
    for (spec, template), name in zip(templates, names, strict=True):
        pipeline = assign_params(template, chosen[name], registry)
        try:
            served.append(ServedPipeline.build(name, pipeline, registry))
        except ArchonError as error:
            usage_error(f"{spec.path}: {error}")
    return served


def _api_key(env: str | None, host: str) -> str | None:
    if env is None:
        if not _is_loopback(host):
            typer.echo(
                f"warning: serving on {host} without --api-key-env: anyone who can reach the"
                " port can spend this server's budget",
                err=True,
            )
        return None
    key = os.environ.get(env, "")
    if not key:
        usage_error(f"--api-key-env {env}: the environment variable is not set or empty")
    return key


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ready(served: list[ServedPipeline]) -> Callable[[RunningServer], None]:
    def announce(running: RunningServer) -> None:
        models = ", ".join(p.name + (" (streams tokens)" if p.direct else "") for p in served)
        typer.echo(f"archon serve: listening on {running.url} - models: {models}", err=True)
        typer.echo(
            "archon serve: stop with Ctrl-C or SIGTERM (requests in flight finish)", err=True
        )

    return announce


@dataclass(frozen=True)
class ServerFlags(opt.FlagGroup):
    """The HTTP side of ``archon serve``: address, admission, limits, timeouts, logging."""

    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for every one).")] = (
        "127.0.0.1"
    )
    port: Annotated[int, typer.Option(help="Port (0: any free port, printed on start).")] = 8000
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the key clients must send as bearer."),
    ] = None
    max_concurrency: Annotated[int, typer.Option(help="Requests running at once.")] = 64
    queue: Annotated[
        int, typer.Option(help="Requests waiting for a slot; more get 429 with Retry-After.")
    ] = 256
    keepalive: Annotated[
        float, typer.Option(help="Seconds without output before a stream gets a keep-alive.")
    ] = 10.0
    max_n: Annotated[int, typer.Option(help="Largest n accepted.")] = 16
    client_sampling: Annotated[
        bool,
        typer.Option(
            "--client-sampling/--no-client-sampling",
            help="Let temperature/top_p/max_tokens override a direct pipeline's answer call.",
        ),
    ] = True
    shutdown_timeout: Annotated[
        float, typer.Option(help="On SIGTERM, wait this long for requests in flight.")
    ] = 60.0
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every HTTP request (stderr).")
    ] = False
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a connection has to send complete request headers.")
    ] = 10.0
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request body has to arrive (then 408).")
    ] = 30.0
    max_connections: Annotated[
        int,
        typer.Option(
            help="Connections open at once; one more closes the longest-waiting connection"
            " that is not running a request (or is refused when all are)."
        ),
    ] = 512

    def check(self) -> None:
        """Usage errors for counts and timeouts no server can work with."""
        for option, value, low in (
            ("--max-concurrency", self.max_concurrency, 1),
            ("--queue", self.queue, 0),
            ("--max-n", self.max_n, 1),
            ("--max-connections", self.max_connections, 1),
        ):
            if value < low:
                usage_error(f"{option} must be at least {low}")
        for option, seconds in (
            ("--keepalive", self.keepalive),
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
        ):
            if seconds <= 0:
                usage_error(f"{option} must be positive")

    def settings(self, seed: int) -> ServeSettings:
        return ServeSettings(
            max_concurrency=self.max_concurrency,
            queue=self.queue,
            seed=seed,
            keepalive_s=self.keepalive,
            max_n=self.max_n,
            client_sampling=self.client_sampling,
            api_key=_api_key(self.api_key_env, self.host),
            header_timeout_s=self.header_timeout,
            body_timeout_s=self.body_timeout,
            max_connections=self.max_connections,
        )


def _access_log() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access = logging.getLogger("archon.serve.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)


async def _run(
    served: list[ServedPipeline],
    *,
    connection: opt.ConnectionFlags,
    cache: CallCache | None,
    trace: JsonlTrace | None,
    otel: Otel | None,
    server: ServerFlags,
    settings: ServeSettings,
    budget: ServerBudget,
    model_concurrency: int,
) -> None:
    client = make_shared_client([p.pipeline for p in served], connection)
    try:
        env = run_env(
            client,
            connection,
            cache,
            registry=default_registry(),
            seed=settings.seed,
            trace=trace,
            max_concurrency=model_concurrency,
        )
        app = create_app(served, env, settings=settings, budget=budget, otel=otel)
        await serve(
            app,
            server.host,
            server.port,
            shutdown_timeout_s=server.shutdown_timeout,
            access_log=server.access_log,
            on_ready=_ready(served),
            on_stopping=lambda: typer.echo(
                "archon serve: stopping; finishing the requests in flight", err=True
            ),
        )
    finally:
        await client.aclose()


@opt.grouped
def serve_command(
    pipes: Annotated[
        list[str],
        typer.Argument(help="FILE.pipe or NAME=FILE.pipe (served as the pipeline's name or NAME)."),
    ],
    params: Annotated[
        list[str] | None,
        typer.Option(help="JSON hole values: FILE for every pipeline, or NAME=FILE. Repeatable."),
    ] = None,
    *,
    server: ServerFlags,
    model_concurrency: Annotated[
        int, typer.Option(help="Model calls in flight at once, over all requests.")
    ] = 64,
    budget: Annotated[
        opt.BudgetFlags,
        opt.use("calls", "tokens", "usd", calls="--max-calls", tokens="--max-tokens"),
    ],
    budget_window: Annotated[
        float | None,
        typer.Option(
            help="Renew the --budget-* totals every this many seconds (default: never).",
            rich_help_panel=opt.BudgetFlags.panel,
        ),
    ] = None,
    trace: opt.Trace = None,
    otel: opt.Otel = False,
    cache: opt.CacheFlags,
    connection: opt.ConnectionFlags,
    seed: opt.Seed = 0,
) -> None:
    """Serve pipelines behind an OpenAI-compatible API (/v1/chat/completions, /v1/models,
    /health, /metrics) until SIGTERM or Ctrl-C.

    The --budget-* totals cover every request (then requests get 429); --seed is the seed of
    requests that send none. Exit codes: 0 stopped cleanly, 1 diagnostics, 2 usage error,
    3 could not listen.
    """
    server.check()
    if model_concurrency < 1:
        usage_error("--model-concurrency must be at least 1")
    check_connection(connection)
    served = _pipelines(pipes, params or [], default_registry())
    settings = server.settings(seed)
    try:
        server_budget = ServerBudget(budget_of(budget), window_s=budget_window)
    except ArchonError as error:
        usage_error(str(error))
    if server.access_log:
        _access_log()
    exporter = open_otel(otel)
    call_cache = open_cache(cache)
    jsonl = JsonlTrace(trace) if trace is not None else None
    try:
        asyncio.run(
            _run(
                served,
                connection=connection,
                cache=call_cache,
                trace=jsonl,
                otel=exporter,
                server=server,
                settings=settings,
                budget=server_budget,
                model_concurrency=model_concurrency,
            )
        )
    except OSError as error:
        typer.echo(f"error: cannot listen on {server.host}:{server.port}: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME) from error
    finally:
        if jsonl is not None:
            jsonl.close()
        if call_cache is not None:
            call_cache.close()
        if exporter is not None:
            exporter.shutdown()
    typer.echo("archon serve: stopped", err=True)
