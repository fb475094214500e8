"""A guard, not a crash: check that the installed llama.cpp engine runs on this CPU.

A llama.cpp built with ``-march=native`` (llama-cpp-python's default) on one machine, or on a
machine whose CPU *advertises* AMX or AVX-512 that the hypervisor does not enable, dies with
``SIGILL`` (Illegal instruction) on its first matrix multiplication. In-process that kills the
whole evaluation or search, with no message. So before the first local model load of a
process, :meth:`EngineGuard.require` runs a tiny decode (a short prompt evaluated as one batch,
then 8 generated tokens) of the model about to be loaded **in a child process**, and turns a
child killed by a signal into a :class:`~archon.runtime.clients.base.ModelCallError` that names
the signal, the CPU features and the command that installs a portable build.

The verdict is cached in ``<cache_dir>/engine-check.json``, keyed by the engine build (the
llama-cpp-python version and the size and mtime of its native libraries) and the CPU flag set,
so it costs one child process (about a second on a small model) per build and machine.
``ARCHON_ENGINE_CHECK=0`` skips the check (read when a guard is created, never at import).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from archon.runtime.clients.base import ModelCallError

logger = logging.getLogger(__name__)

REINSTALL_HINT = (
    "reinstall a portable engine: `scripts/install.sh local` from archon's source tree, or"
    ' `CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON'
    ' -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"'
    " pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python==0.3.36`"
)
"""What to run when the installed engine cannot run on this CPU."""

FEATURES_OF_INTEREST = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
"""CPU flags that decide which llama.cpp kernels can run."""

CHECK_TIMEOUT_S = 120.0

_CHILD = r"""
import sys, time
import llama_cpp
info = llama_cpp.llama_print_system_info()
print("SYSTEM_INFO " + (info.decode() if isinstance(info, bytes) else str(info)), flush=True)
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=int(sys.argv[2]),
                      n_batch=64, verbose=False, seed=0)
prompt = "The quick brown fox jumps over the lazy dog. " * 4
llm.create_completion(prompt, max_tokens=1, temperature=0.0)  # the prompt, as one batch
started = time.perf_counter()
out = llm.create_completion(prompt, max_tokens=int(sys.argv[3]), temperature=0.0)
elapsed = time.perf_counter() - started  # decode only: the prompt's KV is reused
print("DECODED %d %.3f" % (out["usage"]["completion_tokens"], elapsed), flush=True)
"""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, or the machine type when unknown."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return os.uname().machine


def engine_libraries() -> tuple[Path, ...]:
    """The native libraries of the installed llama-cpp-python (found without loading them)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return ()
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    lib_dir = Path(override) if override else Path(spec.submodule_search_locations[0]) / "lib"
    return tuple(sorted(lib_dir.glob("lib*.so*"))) if lib_dir.is_dir() else ()


def engine_version() -> str:
    """llama-cpp-python's version, or ``"not installed"``."""
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "not installed"


def build_identity() -> str:
    """A string that changes whenever the installed engine's binaries change."""
    parts = [engine_version()]
    for lib in engine_libraries():
        try:
            stat = lib.stat()
        except OSError:
            continue
        parts.append(f"{lib.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return "|".join(parts)


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one engine check.

    Attributes:
        ok: the child decoded its tokens and exited cleanly.
        detail: what happened, in one line (the error message when not ok).
        system_info: llama.cpp's own list of the instruction sets it was built with.
        signal_name: the signal that killed the child (e.g. ``"SIGILL"``), if one did.
        tokens_per_s: greedy decode speed measured by the check (prompt excluded).
    """

    ok: bool
    detail: str
    system_info: str = ""
    signal_name: str | None = None
    tokens_per_s: float | None = None


def _child_argv(model_path: Path, threads: int, tokens: int) -> list[str]:
    return [sys.executable, "-c", _CHILD, str(model_path), str(threads), str(tokens)]


def _signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _features_text(flags: frozenset[str]) -> str:
    present = [f for f in FEATURES_OF_INTEREST if f in flags]
    return " ".join(present) if present else "(none of the SIMD extensions llama.cpp uses)"


def interpret(returncode: int, stdout: str, stderr: str, flags: frozenset[str]) -> CheckResult:
    """The verdict for a finished child (pure: unit-tested with made-up outcomes)."""
    info = next(
        (
            line.removeprefix("SYSTEM_INFO ")
            for line in stdout.splitlines()
            if "SYSTEM_INFO" in line
        ),
        "",
    )
    decoded = [line.split() for line in stdout.splitlines() if line.startswith("DECODED ")]
    name = _signal_name(returncode)
    if name is not None:
        what = "illegal instruction" if name == "SIGILL" else "crashed"
        return CheckResult(
            ok=False,
            detail=(
                f"the installed llama.cpp engine ({engine_version()}) was killed by {name}"
                f" ({what}) in a test decode: it was built for instructions this machine"
                f" cannot execute. CPU advertises: {_features_text(flags)}."
                + (f" Engine built with: {info.strip()}." if info else "")
                + f" To fix it, {REINSTALL_HINT}"
            ),
            system_info=info,
            signal_name=name,
        )
    if returncode != 0 or not decoded:
        tail = (stderr.strip().splitlines() or ["no output"])[-1][:300]
        return CheckResult(
            ok=False,
            detail=f"the llama.cpp engine check failed (exit {returncode}): {tail}",
            system_info=info,
        )
    tokens, seconds = int(decoded[-1][1]), float(decoded[-1][2])
    speed = tokens / seconds if seconds > 0 else None
    return CheckResult(
        ok=True, detail="engine runs on this CPU", system_info=info, tokens_per_s=speed
    )


def run_check(
    model_path: Path,
    *,
    threads: int = 2,
    tokens: int = 8,
    argv: Sequence[str] | None = None,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> CheckResult:
    """Decode ``tokens`` tokens of ``model_path`` in a child process and report how it went.

    The child evaluates a short prompt as one batch (the prompt-processing kernels), then
    decodes greedily (the generation kernels); ``tokens_per_s`` is the decode speed.
    ``argv`` replaces the child's command line (tests use it to fake a child that dies).
    """
    command = list(argv) if argv is not None else _child_argv(model_path, threads, tokens)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return CheckResult(ok=False, detail=f"the engine check did not finish in {timeout_s:.0f} s")
    except OSError as e:
        return CheckResult(ok=False, detail=f"could not start the engine check: {e}")
    return interpret(done.returncode, done.stdout, done.stderr, cpu_flags())


class EngineGuard:
    """Runs :func:`run_check` once per engine build and CPU, and remembers the verdict.

    Args:
        cache_dir: where ``engine-check.json`` is kept (None: remembered in memory only).
        enabled: False skips every check (``ARCHON_ENGINE_CHECK=0``).
        threads: threads of the check's decode.
    """

    def __init__(self, cache_dir: Path | None, *, enabled: bool = True, threads: int = 2) -> None:
        self.cache_dir = cache_dir
        self.enabled = enabled
        self.threads = threads
        self._verdicts: dict[str, CheckResult] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, cache_dir: Path | None, *, threads: int = 2) -> EngineGuard:
        """A guard that honours ``ARCHON_ENGINE_CHECK=0`` (read now, not at import)."""
        enabled = os.environ.get("ARCHON_ENGINE_CHECK", "1").strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
        return cls(cache_dir, enabled=enabled, threads=threads)

    def key(self) -> str:
        """The cache key: engine build and CPU flags."""
        text = build_identity() + "#" + " ".join(sorted(cpu_flags()))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _file(self) -> Path | None:
        return self.cache_dir / "engine-check.json" if self.cache_dir is not None else None

    def _stored(self, key: str) -> CheckResult | None:
        path = self._file()
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = data.get(key) if isinstance(data, dict) else None
            if not isinstance(entry, dict):
                return None
            return CheckResult(
                ok=bool(entry["ok"]),
                detail=str(entry["detail"]),
                system_info=str(entry.get("system_info", "")),
                signal_name=entry.get("signal_name"),
                tokens_per_s=entry.get("tokens_per_s"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged file is only a lost cache: check again

    def _store(self, key: str, result: CheckResult) -> None:
        path = self._file()
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data[key] = {**result.__dict__, "checked_at": time.time()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            logger.warning("could not record the engine check in %s: %s", path, e)

    def remember(self, result: CheckResult) -> None:
        """Store ``result`` as the verdict for this build and CPU (``archon models doctor``)."""
        with self._lock:
            self._verdicts[self.key()] = result
            self._store(self.key(), result)

    def check(self, model_path: Path, *, argv: Sequence[str] | None = None) -> CheckResult:
        """The verdict for this build and CPU: remembered, stored, or found by a child."""
        key = self.key()
        with self._lock:
            known = self._verdicts.get(key) or self._stored(key)
            if known is None:
                known = run_check(model_path, threads=self.threads, argv=argv)
                # A timeout or start failure says nothing about the CPU: do not store it.
                if known.ok or known.signal_name is not None:
                    self._store(key, known)
            self._verdicts[key] = known
            return known

    def require(self, model_path: Path, *, argv: Sequence[str] | None = None) -> None:
        """Raise :class:`ModelCallError` when the engine was killed by a signal here.

        Other failures of the check (a file that is not a model, a timeout) are logged and
        left to the real load to report. A no-op when the guard is disabled.
        """
        if not self.enabled:
            return
        result = self.check(model_path, argv=argv)
        if result.signal_name is not None:
            raise ModelCallError(result.detail, retryable=False)
        if not result.ok:
            # Not a CPU problem (a bad model file, a slow machine): the real load reports it.
            logger.warning("%s", result.detail)
