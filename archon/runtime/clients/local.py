"""``LocalClient``: ``local/<name>`` models in-process through llama-cpp-python.

The only module that imports ``llama_cpp`` (lazily, with an install hint). Each GGUF file is
loaded once per client and shared by every call; generation runs in a worker thread
(``asyncio.to_thread``) so the event loop keeps serving other nodes. One loaded model serves
one request at a time: :class:`~archon.runtime.limits.Limits` queues ``local/...`` calls with
a concurrency of 1, and a per-model lock here guards the native object regardless. The chat
template comes from the GGUF metadata; seeds are honoured per call. A request asking for
logprobs uses a second instance of the same file opened with ``logits_all=True`` (the
weights are memory-mapped, so it shares their pages).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from archon.runtime.clients.base import ModelCallError
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

logger = logging.getLogger(__name__)

PREFIX = "local/"
INSTALL_HINT = (
    "local models need llama-cpp-python: pip install 'archon-pipe[local]' "
    "(it compiles llama.cpp, a few minutes the first time)"
)


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
            :func:`archon.runtime.models.ensure` bound to the cache directory. A name that
            is itself a path to a ``.gguf`` file is used as is.
        paths: explicit name -> GGUF path overrides (``"*"`` matches any name:
            ``--model-path``).
        n_ctx: context window.
        n_threads: CPU threads (default: every core available to the process).
    """

    def __init__(
        self,
        resolve: Callable[[str], Path] | None = None,
        *,
        paths: Mapping[str, str | Path] | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ) -> None:
        self._resolve = resolve
        self._paths = {k: Path(v) for k, v in (paths or {}).items()}
        self.n_ctx = n_ctx
        self.n_threads = n_threads or available_threads()
        self._models: dict[tuple[Path, bool], _Loaded] = {}
        self._loading: dict[tuple[Path, bool], asyncio.Lock] = {}

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

    async def _model(self, model: str, logits_all: bool) -> _Loaded:
        path = await asyncio.to_thread(self.path_for, model)
        key = (path, logits_all)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._models:
                self._models[key] = _Loaded(await asyncio.to_thread(self._load, path, logits_all))
            return self._models[key]

    def _load(self, path: Path, logits_all: bool) -> Any:
        llama = import_llama()
        if not path.is_file():
            raise ModelCallError(f"model file not found: {path}")
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

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One sample from the local model, generated in a worker thread."""
        loaded = await self._model(request.model, request.logprobs)
        return await asyncio.to_thread(self._generate, loaded, request)

    def _generate(self, loaded: _Loaded, request: CompletionRequest) -> CompletionResponse:
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = 1
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
            text=choice["message"].get("content") or "",
            logprob=_mean_logprob(choice) if request.logprobs else None,
            finish_reason=choice.get("finish_reason"),
        )
        return CompletionResponse(completions=(completion,), usage=usage)

    async def aclose(self) -> None:
        """Free the loaded models."""
        models, self._models = self._models, {}
        for loaded in models.values():
            with loaded.lock:
                close = getattr(loaded.llm, "close", None)
                if close is not None:
                    close()


def _mean_logprob(choice: Mapping[str, Any]) -> float | None:
    content = (choice.get("logprobs") or {}).get("content") or ()
    values = [float(t["logprob"]) for t in content if t.get("logprob") is not None]
    return sum(values) / len(values) if values else None
