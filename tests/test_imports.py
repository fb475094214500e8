"""The import direction of DESIGN.md §3.3, enforced by reading every module's imports with ``ast``.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: the rule
is about which packages know about which, not only about import-time cycles. ``archon`` (the
facade, ``archon/__init__.py``), ``archon/__main__.py`` (``python -m archon`` starts the CLI)
and ``archon/build.py`` are exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archon"
EXEMPT = {"archon", "archon.__main__", "archon.build"}
LEAVES = {
    "archon.source",
    "archon.errors",
    "archon.ir",
    "archon.values",
    "archon.processes",
    "archon.outputs",
    "archon.version",
}
LEAF_ALLOWED = {
    "archon.source": set(),
    "archon.processes": set(),
    "archon.outputs": set(),
    "archon.version": set(),
    "archon.values": set(),
    "archon.errors": {"archon.source"},
    "archon.ir": {"archon.source"},
}
RUNTIME_MAY_USE_FROM_COMPILER = {
    "archon.compiler.graph",
    "archon.compiler.structure",
    "archon.compiler.cost",
}
THIRD_PARTY_HOMES = {
    "networkx": lambda m: m == "archon.compiler.graph",
    "litellm": lambda m: m == "archon.runtime.clients.litellm",
    "optuna": lambda m: _within(m, "archon.search"),
    "lark": lambda m: _within(m, "archon.dsl"),
    "llama_cpp": lambda m: (
        m in {"archon.runtime.clients.local.client", "archon.runtime.clients.local.engine"}
    ),
    "opentelemetry": lambda m: m == "archon.observability.otel",
}
LOCAL_ENGINE = "archon.runtime.clients.local"
# What the runtime's own modules (executor, context, limits, ...) may import from its clients:
# the client protocol and errors, and the key policy the runtime facade re-exports.
CLIENT_ENTRY_POINTS = {
    "archon.runtime.clients",
    "archon.runtime.clients.base",
    "archon.runtime.clients.keys",
}
# The runtime module that assembles the routing client (as the CLI used to): it may import
# the router and what the router is configured with (HTTP timeouts, local model files).
CLIENT_ASSEMBLY = {"archon.runtime.env"}


def _within(module: str, package: str | tuple[str, ...]) -> bool:
    packages = (package,) if isinstance(package, str) else package
    return any(module == p or module.startswith(p + ".") for p in packages)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


def _is_module(module: str) -> bool:
    return _is_package(module) or (PACKAGE.parent / (module.replace(".", "/") + ".py")).exists()


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file."""
    module = _module_name(path)
    return imports_in(module, path.read_text(encoding="utf-8"), _is_package(module))


def imports_in(module: str, text: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in ``text``, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from archon import ir` imports the module archon.ir, not the facade.
                candidate = f"{base}.{alias.name}"
                yield (candidate if _is_module(candidate) else base), node.lineno


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    top = imported.split(".")[0]
    if top in THIRD_PARTY_HOMES:
        if not THIRD_PARTY_HOMES[top](importer):
            return f"{top} may be imported only in its one home module"
        return None
    if top != "archon" or importer in EXEMPT or _within(imported, importer):
        return None
    if imported == "archon":
        return "the facade `archon` is for users; import the module that defines the name"
    if _within(imported, "archon.cli") and not _within(importer, "archon.cli"):
        return "nothing imports archon.cli"
    if _within(imported, "archon.testing") and not _within(importer, "archon.testing"):
        return "only tests import archon.testing"
    if _within(imported, "archon.serve") and not _within(importer, ("archon.serve", "archon.cli")):
        return "only the CLI imports archon.serve (the server builds on the runtime)"
    if _within(imported, "archon.lsp") and not _within(importer, ("archon.lsp", "archon.cli")):
        return "only the CLI imports archon.lsp (the language server builds on the compiler)"
    if _within(imported, "archon.observability") and not _within(
        importer, ("archon.observability", "archon.serve", "archon.cli")
    ):
        return "only the CLI and the server import archon.observability (the runtime has sinks)"
    if _within(importer, "archon.observability"):
        if imported not in LEAVES and not _within(
            imported, ("archon.runtime", "archon.observability")
        ):
            return "observability may import only the runtime, the leaves and itself"
        if _within(imported, "archon.runtime.clients"):
            return "observability reads traces; it never reaches the model clients"
        return None
    if _within(importer, "archon.serve"):
        for forbidden in ("archon.dsl", "archon.search", "archon.eval"):
            if _within(imported, forbidden):
                return f"the server never imports {forbidden} (it serves concrete IR)"
        return None
    if importer in LEAVES:
        if imported not in LEAF_ALLOWED[importer]:
            allowed = ", ".join(sorted(LEAF_ALLOWED[importer])) or "nothing"
            return f"{importer} is a leaf: it may import {allowed} from archon"
        return None
    if _within(importer, "archon.sandbox"):
        if imported not in LEAVES and not _within(imported, "archon.sandbox"):
            return "the sandbox may import only the leaves and itself"
        return None
    if _within(importer, "archon.layers"):
        if imported not in LEAVES and not _within(imported, ("archon.layers", "archon.sandbox")):
            return "layers may import only the leaves (source, errors, ir, values), sandbox, layers"
        return None
    if _within(importer, "archon.dsl"):
        if imported not in {"archon.source", "archon.errors"} and not _within(
            imported, "archon.dsl"
        ):
            return "the DSL may import only archon.source, archon.errors and archon.dsl"
        return None
    if _within(importer, "archon.compiler"):
        allowed = ("archon.dsl", "archon.ir", "archon.layers", "archon.compiler")
        if imported not in LEAVES and not any(_within(imported, a) for a in allowed):
            return "the compiler may import only dsl, ir, layers, the leaves and itself"
        return None
    if _within(importer, "archon.runtime"):
        if _within(imported, "archon.compiler") and imported not in (RUNTIME_MAY_USE_FROM_COMPILER):
            return "the runtime may use only compiler.graph, compiler.structure, compiler.cost"
        if (
            _within(imported, "archon.runtime.clients")
            and not _within(importer, "archon.runtime.clients")
            and imported not in CLIENT_ENTRY_POINTS
            and importer not in CLIENT_ASSEMBLY
        ):
            return "the runtime reaches its clients only through clients.base and clients.keys"
        if (
            _within(imported, LOCAL_ENGINE)
            and not _within(importer, LOCAL_ENGINE)
            and importer not in {"archon.runtime.clients.router", *CLIENT_ASSEMBLY}
        ):
            return "within the runtime, only the router (and runtime.env) use the local engine"
        for forbidden in ("archon.dsl", "archon.search"):
            if _within(imported, forbidden):
                return f"the runtime never imports {forbidden}"
        return None
    if _within(importer, "archon.eval") or _within(importer, "archon.search"):
        layer = "eval" if _within(importer, "archon.eval") else "search"
        if _within(imported, "archon.dsl"):
            return f"{layer} never imports archon.dsl (it sees only the IR)"
        if _within(imported, "archon.compiler") and imported not in RUNTIME_MAY_USE_FROM_COMPILER:
            return f"{layer} may use only compiler.graph, compiler.structure, compiler.cost"
        if layer == "eval" and _within(imported, "archon.search"):
            return "eval never imports archon.search (search builds on eval)"
    return None


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_found() -> None:
    names = {_module_name(p) for p in _modules()}
    assert {"archon", "archon.ir", "archon.compiler.lower", "archon.dsl.parser"} <= names


def test_import_direction() -> None:
    problems = []
    for path in _modules():
        importer = _module_name(path)
        for imported, line in imports_of(path):
            reason = violation(importer, imported)
            if reason is not None:
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                problems.append(f"{where}: {importer} imports {imported}: {reason}")
    assert not problems, "import direction (DESIGN.md §3.3) broken:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("archon.ir", "archon.errors"),
        ("archon.values", "archon.source"),
        ("archon.layers.rank", "archon.compiler.lower"),
        ("archon.dsl.parser", "archon.ir"),
        ("archon.compiler.lower", "archon.runtime.executor"),
        ("archon.runtime.executor", "archon.dsl.parser"),
        ("archon.runtime.executor", "archon.compiler.lower"),
        ("archon.runtime.executor", "archon.search"),
        ("archon.eval.evaluate", "archon.search.driver"),
        ("archon.eval.evaluate", "archon.dsl.printer"),
        ("archon.search.driver", "archon.compiler.emit"),
        ("archon.search.driver", "archon.dsl.ast"),
        ("archon.search.driver", "archon.cli.common"),
        ("archon.compiler.checks", "networkx"),
        ("archon.runtime.clients.router", "litellm"),
        ("archon.runtime.executor", "optuna"),
        ("archon.compiler.lower", "lark"),
        ("archon.layers.rank", "archon"),
        ("archon.runtime.executor", "archon.testing"),
        ("archon.runtime.executor", "archon.serve.app"),
        ("archon.compiler.lower", "archon.serve"),
        ("archon.serve.app", "archon.dsl.parser"),
        ("archon.serve.app", "archon.cli.common"),
        ("archon.sandbox.api", "archon.layers.base"),
        ("archon.sandbox.api", "archon.runtime.context"),
        ("archon.sandbox", "archon.eval.evaluate"),
        ("archon.runtime.limits", "archon.runtime.clients.local.kv"),
        ("archon.runtime.executor", "archon.runtime.clients.router"),
        ("archon.runtime.clients.litellm", "archon.runtime.clients.local.client"),
        ("archon.runtime.clients.local.models", "llama_cpp"),
        ("archon.runtime.env", "archon.dsl.parser"),
        ("archon.runtime.executor", "archon.observability.otel"),
        ("archon.eval.evaluate", "archon.observability"),
        ("archon.observability.otel", "archon.compiler.graph"),
        ("archon.observability.timeline", "archon.eval.evaluate"),
        ("archon.observability.otel", "archon.runtime.clients.router"),
        ("archon.runtime.trace", "opentelemetry.trace"),
        ("archon.serve.app", "opentelemetry"),
        ("archon.outputs", "archon.errors"),
        ("archon.compiler.lower", "archon.lsp.server"),
    ],
)
def test_forbidden_imports_are_caught(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("archon.errors", "archon.source"),
        ("archon.layers.rank", "archon.values"),
        ("archon.layers.rank", "archon.layers.base"),
        ("archon.dsl.parser", "archon.errors"),
        ("archon.compiler.lower", "archon.dsl.ast"),
        ("archon.runtime.executor", "archon.compiler.graph"),
        ("archon.search.driver", "archon.runtime.executor"),
        ("archon.cli.common", "archon.compiler"),
        ("archon.compiler.graph", "networkx"),
        ("archon.runtime.clients.litellm", "litellm"),
        ("archon.search.space", "optuna"),
        ("archon.dsl.parser", "lark"),
        ("archon", "archon.cli"),
        ("archon.build", "archon.dsl.ast"),
        ("archon.testing.fixtures", "archon.compiler"),
        ("archon.serve.engine", "archon.runtime.executor"),
        ("archon.cli.serve_cmds", "archon.serve"),
        ("archon.layers.base", "archon.sandbox"),
        ("archon.runtime.context", "archon.sandbox"),
        ("archon.eval.metrics.code", "archon.sandbox"),
        ("archon.sandbox.api", "archon.sandbox.confine"),
        ("archon.sandbox.confine", "archon.processes"),
        ("archon.runtime.executor", "archon.runtime.clients.base"),
        ("archon.runtime", "archon.runtime.clients.keys"),
        ("archon.runtime.clients.router", "archon.runtime.clients.local.client"),
        ("archon.runtime.clients.local.client", "archon.runtime.clients.local.engine_check"),
        ("archon.runtime.clients.local.engine", "llama_cpp"),
        ("archon.cli.doctor", "archon.runtime.clients.local.engine_check"),
        ("archon.runtime.env", "archon.runtime.clients.router"),
        ("archon.runtime.env", "archon.runtime.clients.local.models"),
        ("archon.observability.otel", "opentelemetry.sdk.trace"),
        ("archon.observability.otel", "archon.runtime.trace"),
        ("archon.observability.picture", "archon.observability.timeline"),
        ("archon.serve.app", "archon.observability.otel"),
        ("archon.cli.trace_cmds", "archon.observability.picture"),
    ],
)
def test_allowed_imports_pass(importer: str, imported: str) -> None:
    assert violation(importer, imported) is None


def test_imports_are_read_with_relative_ones_resolved() -> None:
    text = (
        "from . import base\n"
        "from ..compiler import lower\n"
        "from .. import ir\n"
        "import networkx as nx\n"
        "def f():\n"
        "    from archon.dsl.parser import parse\n"
    )
    found = list(imports_in("archon.layers.rank", text, is_package=False))
    assert found == [
        ("archon.layers.base", 1),
        ("archon.compiler.lower", 2),
        ("archon.ir", 3),
        ("networkx", 4),
        ("archon.dsl.parser", 6),
    ]
    reasons = [violation("archon.layers.rank", imported) for imported, _ in found]
    assert [r is None for r in reasons] == [True, False, True, False, False]
