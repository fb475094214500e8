"""The embedded llama.cpp engine: one batched context per GGUF model.

With :mod:`archon.runtime.clients.local.client`, the only module that imports ``llama_cpp`` (always
lazily). :class:`LocalEngine` loads one GGUF file once and creates one llama.cpp context with
``n_seq_max`` sequences and a *unified* KV cache of ``n_ctx`` cells shared by all of them
(``kv_unified``: a prefix copied between sequences shares its cells, and one request alone can
still use the whole window). :class:`LlamaBackend` is the native side of the scheduler in
:mod:`archon.runtime.clients.local.batch`, which does the batching.

Prompts are built exactly as ``llama_cpp.Llama.create_chat_completion`` builds them: the chat
handler llama-cpp-python would pick from the GGUF metadata runs against a stand-in for
``Llama`` that tokenizes and then captures the prompt tokens and stop strings instead of
generating. Sampler chains and their defaults (top_k 40, top_p 0.95, min_p 0.05, temperature
0.2 when unset, greedy at 0) are llama-cpp-python's too, so a greedy answer alone in the batch
equals the sequential one.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archon.runtime.clients.base import ModelCallError
from archon.runtime.clients.local.batch import (
    SCORE_ROWS,
    DecodeError,
    Job,
    Outcome,
    Row,
    Sampling,
    Scheduler,
    rows_per_step,
)
from archon.runtime.clients.local.kv import DEFAULT_SEQUENCES
from archon.runtime.clients.local.thread import Engine
from archon.values import Completion, CompletionRequest, CompletionResponse, Usage

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "local models need llama-cpp-python: pip install 'archon-pipe[local]' "
    "(it compiles llama.cpp, a few minutes the first time)"
)
# llama-cpp-python's create_chat_completion defaults, used when a request leaves them unset.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size (the penalties are neutral)
GGML_TYPE_BF16 = 30  # ggml.h; the bindings do not name it


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or a ModelCallError with the install hint."""
    try:
        import llama_cpp
    except ImportError as e:
        raise ModelCallError(INSTALL_HINT) from e
    return llama_cpp


@dataclass(frozen=True)
class EngineConfig:
    """How a :class:`LocalEngine` sizes its context.

    Attributes:
        n_ctx: KV cells of the unified cache, shared by all sequences; also the most tokens
            (prompt + answer) one request may use.
        n_seq_max: sequences decoded together.
        n_batch: tokens per decode (prompt chunks and one token per generating sequence).
        n_threads: CPU threads.
        prefix_cache: keep the KV of finished requests for later prompts that share a prefix.
        batch_invariant: use kernels whose result for one sequence does not depend on the
            other rows of the batch (flash attention, weights not repacked), so an answer
            is the same alone or batched; False uses llama-cpp-python's defaults (the
            sequential path's kernels), where the row count and a row's place in the batch
            change the last bits of the logits (see docs/local_engine.md).
        tune_rows: time decodes of 1..n_seq_max rows when the model loads and advance, in
            steps that only generate, the number of sequences that decodes fastest per
            token (see ``local_batch.rows_per_step``); False advances all of them.
    """

    n_ctx: int = 4096
    n_seq_max: int = DEFAULT_SEQUENCES
    n_batch: int = 512
    n_threads: int = 1
    prefix_cache: bool = True
    batch_invariant: bool = True
    tune_rows: bool = True


class _Captured(Exception):
    """Raised by the stand-in's ``create_completion``: carries what would be generated from."""

    def __init__(self, prompt: list[int], stop: list[str]) -> None:
        super().__init__("prompt captured")
        self.prompt = prompt
        self.stop = stop


class _LlamaStandIn:
    """What a llama-cpp-python chat handler uses of ``Llama``: tokenize, then capture."""

    verbose = False

    def __init__(self, model: Any) -> None:
        self._model = model

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(self._model.tokenize(text, add_bos, special))

    def create_completion(self, **kwargs: Any) -> Any:
        stop = kwargs.get("stop") or []
        raise _Captured(list(kwargs["prompt"]), [stop] if isinstance(stop, str) else list(stop))


def _chat_handler(model: Any) -> Any:
    """The chat handler ``Llama.__init__`` would choose for this model (same rules)."""
    from llama_cpp import llama_chat_format

    metadata = model.metadata()
    eos_id, bos_id = model.token_eos(), model.token_bos()
    eos = model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = model.token_get_text(bos_id) if bos_id != -1 else ""
    templates = {
        name[10:]: template
        for name, template in metadata.items()
        if name.startswith("tokenizer.chat_template.")
    }
    if "tokenizer.chat_template" in metadata:
        templates["chat_template.default"] = metadata["tokenizer.chat_template"]
    handlers = {
        name: llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]
        ).to_chat_handler()
        for name, template in templates.items()
    }
    chat_format = "llama-2"
    if "chat_template.default" in templates:
        guessed = llama_chat_format.guess_chat_format_from_gguf_metadata(metadata)
        chat_format = guessed or "chat_template.default"
    return handlers.get(chat_format) or llama_chat_format.get_chat_completion_handler(chat_format)


class LlamaBackend:
    """One GGUF model and its batched llama.cpp context (the scheduler's native side).

    Every method except :meth:`prepare` runs in the engine thread.
    """

    def __init__(self, path: Path, config: EngineConfig) -> None:
        lc = import_llama_cpp()
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # what Llama(verbose=False) does: llama.cpp logs errors only
        lc.llama_backend_init()
        # Typed as Any: the bindings' wrappers are untyped.
        self._lc: Any = lc
        self._internals: Any = _internals
        self.config = config
        self.n_slots = config.n_seq_max
        self.n_cells = config.n_ctx
        self.n_batch = config.n_batch
        self._lock = threading.Lock()  # prepare (any thread) against close (engine thread)
        model_params = lc.llama_model_default_params()
        model_params.n_gpu_layers = 0
        # Repacked weights are multiplied four batch rows at a time by one kernel and the
        # remaining rows by another, with different rounding: not batch-invariant.
        model_params.use_extra_bufts = not config.batch_invariant
        self._model: Any = self._internals.LlamaModel(
            path_model=str(path), params=model_params, verbose=False
        )
        try:
            self._open_context(config)
            self._handler = _chat_handler(self._model)
        except BaseException:
            self._model.close()
            raise
        self.n_vocab = self._model.n_vocab()
        self._vocab = self._model.vocab
        self._piece = ctypes.create_string_buffer(256)
        self._closed = False

    def _open_context(self, config: EngineConfig) -> None:
        lc = self._lc
        params = lc.llama_context_default_params()
        params.n_ctx = config.n_ctx
        params.n_batch = config.n_batch
        params.n_ubatch = config.n_batch
        params.n_seq_max = config.n_seq_max
        params.kv_unified = True
        # At most one logit row per sequence plus the rows of a scored prefix: sizing the
        # output buffer for that (not n_batch rows of n_vocab floats) saves hundreds of MB.
        params.n_outputs_max = config.n_seq_max + SCORE_ROWS
        params.n_threads = config.n_threads
        params.n_threads_batch = config.n_threads
        # Flash attention computes each row on its own; the default path multiplies the
        # whole batch at once with kernels (tinyBLAS, vec_dot for one row) whose rounding
        # depends on the row count and the row's place in it.
        params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if config.batch_invariant
            else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if config.batch_invariant:
            # ggml's CPU flash attention also has a tiled kernel (64+ tokens in a batch) and a
            # split-KV one (a lone token over 512+ cells), each rounding differently; both
            # need K and V of one type. A BF16 V cache (F16 K, same size) keeps every batch
            # on the per-row kernel.
            params.type_v = GGML_TYPE_BF16
        self._ctx: Any = self._internals.LlamaContext(
            model=self._model, params=params, verbose=False
        )
        self._memory = self._ctx.memory
        self._batch = lc.llama_batch_init(config.n_batch, 0, 1)

    # -- requests (any thread) ----------------------------------------------------------------

    def prepare(self, request: CompletionRequest) -> Job:
        """Tokenize ``request`` (chat template, assistant prefix) into a scheduler job."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._lock:
            if self._closed:
                raise ModelCallError(f"{request.model}: the local engine is closed")
            try:
                self._handler(
                    llama=_LlamaStandIn(self._model), messages=messages, stop=list(request.stop)
                )
            except _Captured as captured:
                tokens, stops = captured.prompt, captured.stop
            except Exception as e:  # the chat template rejected the conversation
                raise ModelCallError(
                    f"{request.model}: the chat template failed: {e}", model=request.model
                ) from e
            else:  # pragma: no cover - a handler that does not call create_completion
                raise ModelCallError(f"{request.model}: unsupported chat handler")
            template_length = len(tokens)
            if request.assistant_prefix:
                prefix = request.assistant_prefix.encode("utf-8")
                tokens += self._model.tokenize(prefix, False, False)
        return self._job(request, tokens, stops, template_length)

    def _job(
        self, request: CompletionRequest, tokens: list[int], stops: list[str], template: int
    ) -> Job:
        n_ctx = self.config.n_ctx
        if len(tokens) >= n_ctx:
            raise ModelCallError(
                f"{request.model}: the prompt has {len(tokens)} tokens, more than the context"
                f" window of {n_ctx}; shorten it or give the local client a larger n_ctx",
                model=request.model,
            )
        score_from = None
        max_new = request.max_tokens or 0
        if request.score_only:
            if len(tokens) == template:
                raise ModelCallError(
                    f"{request.model}: the assistant_prefix has no tokens to score",
                    model=request.model,
                )
            score_from, max_new = template, 0
        elif max_new <= 0 or max_new + len(tokens) >= n_ctx:  # llama-cpp-python's rule
            max_new = n_ctx - len(tokens)
        seed = request.seed if request.seed is not None else secrets.randbits(32)
        sampling = Sampling(
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            top_k=DEFAULT_TOP_K,
            min_p=DEFAULT_MIN_P,
            seed=seed & 0xFFFFFFFF,
        )
        return Job(
            model=request.model,
            tokens=tuple(tokens),
            max_new=max_new,
            stops=tuple(s.encode("utf-8") for s in stops),
            sampling=sampling,
            logprobs=request.logprobs,
            score_from=score_from,
            stop_after_code=request.stop_after_code,
            prefix=(request.assistant_prefix or "").encode("utf-8"),
        )

    # -- the scheduler's Backend protocol (engine thread) -------------------------------------

    def decode(self, rows: Sequence[Row]) -> None:
        """Evaluate one batch of rows."""
        batch = self._batch
        batch.n_tokens = len(rows)
        for i, row in enumerate(rows):
            batch.token[i] = row.token
            batch.pos[i] = row.pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = row.slot
            batch.logits[i] = row.logits
        code = self._lc.llama_decode(self._ctx.ctx, batch)
        if code == 1:
            raise DecodeError("no KV cache slot for the batch", no_space=True)
        if code != 0:
            raise DecodeError(f"llama_decode returned {code}")

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Share ``src``'s cells at positions ``[p0, p1)`` with ``dst``."""
        self._lc.llama_memory_seq_cp(self._memory, src, dst, p0, p1)

    def seq_rm(self, slot: int, p0: int) -> None:
        """Drop ``slot``'s cells from position ``p0`` on."""
        if not self._lc.llama_memory_seq_rm(self._memory, slot, p0, -1):
            raise DecodeError(f"could not drop positions {p0}.. of sequence {slot}")

    def clear(self) -> None:
        """Drop every cell."""
        self._lc.llama_memory_clear(self._memory, True)

    def open_sampler(self, sampling: Sampling) -> Any:
        """A sampler chain as ``Llama._init_sampler`` builds it."""
        sampler = self._internals.LlamaSampler()
        sampler.add_penalties(self.n_vocab, PENALTY_LAST_N, 1.0, 0.0, 0.0)
        if sampling.temperature < 0.0:
            sampler.add_dist(sampling.seed)
        elif sampling.temperature == 0.0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(sampling.top_k)
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(sampling.top_p, 1)
            sampler.add_min_p(sampling.min_p, 1)
            sampler.add_temp(sampling.temperature)
            sampler.add_dist(sampling.seed)
        return sampler

    def close_sampler(self, sampler: Any) -> None:
        """Free a sampler chain."""
        sampler.close()

    def sample(self, sampler: Any, row: int) -> int:
        """Sample and accept a token from batch row ``row``'s logits."""
        return int(self._lc.llama_sampler_sample(sampler.sampler, self._ctx.ctx, row))

    def logprob(self, row: int, token: int) -> float:
        """log-softmax of batch row ``row``'s logits at ``token``."""
        import numpy as np

        pointer = self._lc.llama_get_logits_ith(self._ctx.ctx, row)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)
        top = float(logits.max())
        return float(logits[token]) - top - math.log(float(np.exp(logits - top).sum()))

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ...)."""
        return bool(self._lc.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        """The bytes of ``token``; special tokens render as nothing, as in detokenize."""
        n = self._lc.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, 0)
        if n < 0:
            self._piece = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(
                self._vocab, token, self._piece, len(self._piece), 0, 0
            )
        return bytes(self._piece.raw[:n])

    def time_decodes(self, repeats: int = 2) -> list[float]:
        """Seconds of one decode of 1..n_slots rows (the best of ``repeats``), KV left empty."""
        import time

        best = [math.inf] * self.n_slots
        self.decode([Row(0, 0, 0, True)])  # warm up: page in the weights
        self.clear()
        for _ in range(repeats):
            for k in range(1, self.n_slots + 1):  # interleaved: load drift hits every k alike
                start = time.perf_counter()
                self.decode([Row(0, 0, slot, True) for slot in range(k)])
                best[k - 1] = min(best[k - 1], time.perf_counter() - start)
                self.clear()
        return best

    def close(self) -> None:
        """Free the batch, the context and the model."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lc.llama_batch_free(self._batch)
            self._ctx.close()
            self._model.close()


class LocalEngine:
    """One loaded GGUF model serving concurrent requests in one batched context."""

    def __init__(
        self, path: Path, config: EngineConfig, *, decode_lock: threading.Lock | None = None
    ) -> None:
        self.path = path
        self._backend = LlamaBackend(path, config)
        step_rows = None
        if config.tune_rows and config.n_seq_max > 1:
            seconds = self._backend.time_decodes()
            step_rows = rows_per_step(seconds)
            logger.info(
                "%s: decode ms for 1..%d rows %s; sequences advanced per step %s",
                path.name,
                config.n_seq_max,
                [round(t * 1000, 1) for t in seconds],
                step_rows[1:],
            )
        scheduler = Scheduler(self._backend, prefix_cache=config.prefix_cache, step_rows=step_rows)
        self._engine = Engine(
            scheduler,
            name=f"archon-local:{path.name}",
            decode_lock=decode_lock,
            on_close=self._backend.close,
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One sample for ``request``, decoded together with the other live requests.

        ``usage.prompt_tokens`` is the request's whole prompt even when part of its KV was
        shared with another sequence (the tokens actually evaluated are logged at DEBUG).
        """
        job = await asyncio.to_thread(self._backend.prepare, request)
        outcome = await self._engine.run(job)
        return _response(outcome)

    def close(self) -> None:
        """Stop the scheduler thread and free the context and the model (blocks)."""
        self._engine.close()


def _response(outcome: Outcome) -> CompletionResponse:
    completion = Completion(
        text=outcome.text, logprob=outcome.logprob, finish_reason=outcome.finish_reason
    )
    usage = Usage(
        calls=1, prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens
    )
    return CompletionResponse(completions=(completion,), usage=usage)
