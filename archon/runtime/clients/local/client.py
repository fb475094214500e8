"""``LocalClient``: ``local/<name>`` models in-process through llama-cpp-python.

With :mod:`archon.runtime.clients.local.engine`, the only module that imports ``llama_cpp``
(lazily, with an install hint). Each GGUF file is loaded once per client and serves every call
through a :class:`~archon.runtime.clients.local.engine.LocalEngine`: one llama.cpp context with
``n_seq_max`` sequences (8 by default) and a scheduler thread that decodes the concurrent calls
together (continuous batching), sharing the KV of common prompt prefixes (the samples of one
node evaluate their prompt once; judge calls that embed the same query and candidates reuse
it). :class:`~archon.runtime.limits.Limits` lets as many ``local/...`` calls through as the
engine has sequences, so they reach it instead of queueing. Several models can be loaded at
once, each with its own context and thread; they take turns on the CPU (one decode at a time
per client). Each call still answers one sample with its own seed, sampler, stop strings and
usage, so the cache, the budget and the trace see the same calls as before. A
``stop_after_code`` call ends once its first code block is closed (the engine watches the
text as it is generated; the sequential path stops on a string instead, see
:mod:`archon.runtime.clients.code_stop`).

``LocalClient(batched=False)`` keeps the old sequential path (``create_chat_completion``, one
request at a time per model under a lock; a second ``logits_all`` instance for logprobs), used
by ``bench/local_sampling.py`` as the baseline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.local.engine import INSTALL_HINT, EngineConfig, LocalEngine
from archon.runtime.clients.local.engine_check import EngineGuard
from archon.runtime.clients.local.kv import DEFAULT_SEQUENCES
from archon.runtime.clients.translate import Dialect, chat_arguments, mean_logprob, reply_text
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

logger = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")

PREFIX = "local/"
DIALECT = Dialect(sends_model=False, logprobs=(("logprobs", True), ("top_logprobs", 1)))
"""``create_chat_completion`` of the loaded model: no model name (the file is the model);
llama-cpp-python returns logprobs only with ``top_logprobs`` (one is enough: the client reads
the sampled tokens' own)."""
__all__ = ["INSTALL_HINT", "PREFIX", "LocalClient", "available_threads", "import_llama"]


def available_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def import_llama() -> Any:
    """The ``llama_cpp.Llama`` class, or a ModelCallError with the install hint."""
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise ModelCallError(INSTALL_HINT) from e
    return Llama


class _Loaded:
    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.lock = threading.Lock()


class LocalClient:
    """A :class:`~archon.runtime.clients.base.ModelClient` for ``local/<name>`` models.

    Args:
        resolve: maps a model name (without ``local/``) to a GGUF path; the CLI passes
            :func:`archon.runtime.clients.local.models.ensure` bound to the cache directory. A
            name that is itself a path to a ``.gguf`` file is used as is.
        paths: explicit name -> GGUF path overrides (``"*"`` matches any name:
            ``--model-path``).
        n_ctx: context window: the KV cells one model's sequences share, and the most
            tokens (prompt + answer) one call may use.
        n_threads: CPU threads (default: every core available to the process).
        n_seq_max: sequences one model decodes together (batched path).
        prefix_cache: keep the KV of finished calls for later prompts sharing a prefix.
        batch_invariant: an answer does not depend on what else is decoded with it (see
            :class:`~archon.runtime.clients.local.engine.EngineConfig`).
        tune_rows: measure, when a model loads, how many sequences to advance per decode.
        batched: False selects the old sequential path (one call at a time per model), kept
            as the benchmark's baseline; it does not support ``assistant_prefix``.
        engine_guard: checks, before the first model load, that the installed llama.cpp
            build runs on this CPU (a test decode in a child process, so a build that dies
            with SIGILL is an error here, not a dead process). Default: a guard remembering
            its verdict in the archon home (``ARCHON_ENGINE_CHECK=0`` turns it off).
        llama: the ``Llama`` class of the sequential path (default: ``llama_cpp.Llama``,
            imported on the first load); tests pass a stand-in.

    Example:
        >>> client = LocalClient(paths={"*": "model.gguf"})
        >>> client.n_seq_max
        8
    """

    def __init__(
        self,
        resolve: Callable[[str], Path] | None = None,
        *,
        paths: Mapping[str, str | Path] | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_seq_max: int = DEFAULT_SEQUENCES,
        prefix_cache: bool = True,
        batch_invariant: bool = True,
        tune_rows: bool = True,
        batched: bool = True,
        engine_guard: EngineGuard | None = None,
        llama: Callable[..., Any] | None = None,
    ) -> None:
        if n_seq_max < 1:
            raise ValueError("n_seq_max must be at least 1")
        self._resolve = resolve
        self._paths = {k: Path(v) for k, v in (paths or {}).items()}
        self.n_ctx = n_ctx
        self.n_threads = n_threads or available_threads()
        self.n_seq_max = n_seq_max
        self.prefix_cache = prefix_cache
        self.batch_invariant = batch_invariant
        self.tune_rows = tune_rows
        self.batched = batched
        self._guard = engine_guard
        self._llama = llama
        self._engines: dict[Path, LocalEngine] = {}
        self._models: dict[tuple[Path, bool], _Loaded] = {}
        self._loading: dict[object, asyncio.Lock] = {}
        # Engines of one client take turns on the CPU: two decodes at once on the same
        # cores would only slow both down.
        self._decode_lock = threading.Lock()

    def path_for(self, model: str) -> Path:
        """The GGUF file behind ``local/<name>``."""
        name = model.removeprefix(PREFIX)
        if name in self._paths:
            return self._paths[name]
        if "*" in self._paths:
            return self._paths["*"]
        if name.endswith(".gguf"):
            return Path(name)
        if self._resolve is None:
            raise ModelCallError(
                f"no GGUF file known for {model}: pass --model-path or run"
                f" `archon models pull {name}`",
                model=model,
            )
        return self._resolve(name)

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One sample from the local model (decoded together with the other live calls)."""
        if not self.batched:
            if request.assistant_prefix is not None:
                raise ModelCallError(
                    f"{request.model}: assistant_prefix needs the batched local engine",
                    model=request.model,
                )
            loaded = await self._model(request.model, request.logprobs)
            return await asyncio.to_thread(self._generate, loaded, request)
        engine = await self._engine(request.model)
        return await engine.complete(request)

    async def _engine(self, model: str) -> LocalEngine:
        path = await asyncio.to_thread(self.path_for, model)
        return await self._once(self._engines, path, lambda: self._load_engine(path))

    async def _once(self, loaded: dict[_K, _V], key: _K, load: Callable[[], _V]) -> _V:
        """``loaded[key]``, loaded in a thread by the first caller; concurrent callers wait
        for that load instead of loading the same file again."""
        if key in loaded:
            return loaded[key]
        async with self._loading.setdefault(key, asyncio.Lock()):
            if key not in loaded:
                loaded[key] = await asyncio.to_thread(load)
            return loaded[key]

    def _load_engine(self, path: Path) -> LocalEngine:
        self._check_file(path)
        config = EngineConfig(
            n_ctx=self.n_ctx,
            n_seq_max=self.n_seq_max,
            n_threads=self.n_threads,
            prefix_cache=self.prefix_cache,
            batch_invariant=self.batch_invariant,
            tune_rows=self.tune_rows,
        )
        logger.info(
            "loading %s (n_ctx=%d shared by %d sequences, n_threads=%d)",
            path,
            self.n_ctx,
            self.n_seq_max,
            self.n_threads,
        )
        try:
            return LocalEngine(path, config, decode_lock=self._decode_lock)
        except (ValueError, RuntimeError) as e:
            raise ModelCallError(f"could not load {path}: {e}") from e

    def _check_file(self, path: Path) -> None:
        if not path.is_file():
            raise ModelCallError(f"model file not found: {path}")
        if self._guard is None:
            from archon.runtime.home import archon_home

            self._guard = EngineGuard.from_environment(archon_home(), threads=self.n_threads)
        # Runs the child check once per build and CPU (remembered on disk), before the first
        # native load in this process can take the process down.
        self._guard.require(path)

    # -- the sequential path (batched=False) ---------------------------------------------

    async def _model(self, model: str, logits_all: bool) -> _Loaded:
        path = await asyncio.to_thread(self.path_for, model)
        return await self._once(
            self._models, (path, logits_all), lambda: _Loaded(self._load(path, logits_all))
        )

    def _load(self, path: Path, logits_all: bool) -> Any:
        llama = self._llama or import_llama()
        self._check_file(path)
        logger.info("loading %s (n_ctx=%d, n_threads=%d)", path, self.n_ctx, self.n_threads)
        try:
            return llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
                seed=0,
                logits_all=logits_all,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelCallError(f"could not load {path}: {e}") from e

    def _generate(self, loaded: _Loaded, request: CompletionRequest) -> CompletionResponse:
        if request.score_only:
            raise ModelCallError(
                f"{request.model}: score_only needs the batched local engine", model=request.model
            )
        kwargs = chat_arguments(request, DIALECT)
        with loaded.lock:
            try:
                result = loaded.llm.create_chat_completion(**kwargs)
            except ValueError as e:  # e.g. prompt longer than the context window
                raise ModelCallError(f"{request.model}: {e}", model=request.model) from e
        choice = result["choices"][0]
        raw = result.get("usage") or {}
        usage = Usage(
            calls=1,
            prompt_tokens=int(raw.get("prompt_tokens", 0)),
            completion_tokens=int(raw.get("completion_tokens", 0)),
        )
        completion = Completion(
            text=reply_text(
                request, choice["message"].get("content") or "", choice.get("finish_reason")
            ),
            logprob=mean_logprob(choice) if request.logprobs else None,
            finish_reason=choice.get("finish_reason"),
        )
        return CompletionResponse(completions=(completion,), usage=usage)

    async def aclose(self) -> None:
        """Stop the engines' threads and free every loaded model."""
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            await asyncio.to_thread(engine.close)
        models, self._models = self._models, {}
        for loaded in models.values():
            with loaded.lock:
                close = getattr(loaded.llm, "close", None)
                if close is not None:
                    close()
