"""archon: inference-time architectures for LLMs.

Write how LLM calls are combined (generate, critique, rank, fuse, verify, unit tests, vote)
in a ``.pipe`` file or with :mod:`archon.build`, compile it to a checked
:class:`archon.ir.Pipeline`, run it, and search over the choices it leaves open.

Example::

    import archon
    pipeline = archon.compile_source('''
        pipeline hello { generate(models = ["local/qwen2.5-coder-0.5b"]) }
    ''')

Public names are loaded lazily so that ``import archon.ir`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "parse": "archon.dsl.parser",
    "format_source": "archon.dsl.printer",
    "compile_file": "archon.compiler",
    "compile_source": "archon.compiler",
    "compile_ast": "archon.compiler",
    "check_file": "archon.compiler",
    "assign": "archon.compiler.structure",
    "holes": "archon.compiler.structure",
    "estimate": "archon.compiler.cost",
    "run": "archon.runtime",
    "run_sync": "archon.runtime",
    "run_many": "archon.runtime",
    "EvalConfig": "archon.eval",
    "evaluate": "archon.eval",
    "evaluate_sync": "archon.eval",
    "load_dataset": "archon.eval",
    "search": "archon.search",
    "Pipeline": "archon.ir",
    "ArchonError": "archon.errors",
    "DiagnosticError": "archon.errors",
}

__all__ = [
    "ArchonError",
    "DiagnosticError",
    "EvalConfig",
    "Pipeline",
    "__version__",
    "assign",
    "check_file",
    "compile_ast",
    "compile_file",
    "compile_source",
    "estimate",
    "evaluate",
    "evaluate_sync",
    "format_source",
    "holes",
    "load_dataset",
    "parse",
    "run",
    "run_many",
    "run_sync",
    "search",
]

if TYPE_CHECKING:
    from archon.compiler import check_file, compile_ast, compile_file, compile_source
    from archon.compiler.cost import estimate
    from archon.compiler.structure import assign, holes
    from archon.dsl.parser import parse
    from archon.dsl.printer import format_source
    from archon.errors import ArchonError, DiagnosticError
    from archon.eval import EvalConfig, evaluate_sync, load_dataset
    from archon.eval.evaluate import evaluate
    from archon.ir import Pipeline
    from archon.runtime import run, run_many, run_sync
    from archon.search import search


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
