"""Decode and prompt speed of llama.cpp builds side by side: is the portable build slower?

Each build is a folder of llama.cpp shared libraries (``libllama.so``, ``libggml*.so``); the
installed llama-cpp-python is pointed at it with ``LLAMA_CPP_LIB_PATH`` in a child process, so
every build runs the same Python bindings and the same model. Rounds alternate between the
builds (A B C A B C ...) so that load on a shared machine hits them alike; the figures are
medians. A build that dies (e.g. SIGILL) is reported, not fatal.

Run (the installed build is always included, as ``installed``)::

    python bench/engine_builds.py [--build NAME=LIBDIR ...] [--model PATH] [--rounds 3]

To make the variants, configure llama.cpp from llama-cpp-python's sdist
(``vendor/llama.cpp``) with ``-DBUILD_SHARED_LIBS=ON`` and either ``-DGGML_NATIVE=ON``
(native) or the portable flags of ``scripts/install.sh`` with ``-DGGML_AVX512=OFF`` (avx2),
and build the ``llama`` target; LIBDIR is the build's ``bin`` folder.

Prints one row per build (decode tokens/s, prompt tokens/s, ratio to the installed build) and
ends with the line ``decode ratio <name>/installed: X.XX`` for each other build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=1024, n_threads=int(sys.argv[2]),
                      n_batch=512, verbose=False, seed=0)
prompt = "Write a detailed explanation of how hash tables work, with examples. " * 6
llm.create_completion("warm up", max_tokens=4, temperature=0.0)
llm.reset()
t0 = time.perf_counter()
llm.create_completion(prompt, max_tokens=1, temperature=0.0)
t1 = time.perf_counter()
out = llm.create_completion(prompt, max_tokens=int(sys.argv[3]), temperature=0.0)
t2 = time.perf_counter()
info = llama_cpp.llama_print_system_info()
print(json.dumps({
    "prompt_tokens": out["usage"]["prompt_tokens"], "prompt_s": t1 - t0,
    "decode_tokens": out["usage"]["completion_tokens"], "decode_s": t2 - t1,
    "system_info": info.decode() if isinstance(info, bytes) else str(info),
}))
"""


def default_model() -> Path:
    """The default 0.5B model in archon's cache."""
    from archon.runtime.clients.local.models import DEFAULT_MODEL, model_path
    from archon.runtime.home import archon_home

    return model_path(DEFAULT_MODEL, archon_home())


def one_round(lib_dir: str | None, model: Path, threads: int, tokens: int) -> dict[str, object]:
    """One measurement of one build in a fresh child process."""
    env = dict(os.environ)
    if lib_dir is not None:
        env["LLAMA_CPP_LIB_PATH"] = lib_dir
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(threads), str(tokens)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-200:]}"}
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=LIBDIR")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = args.model or default_model()
    builds: list[tuple[str, str | None]] = [("installed", None)]
    builds += [(b.split("=", 1)[0], b.split("=", 1)[1]) for b in args.build]
    results: dict[str, list[dict[str, object]]] = {name: [] for name, _ in builds}
    for _ in range(args.rounds):
        for name, lib in builds:
            results[name].append(one_round(lib, model, args.threads, args.tokens))
    speeds: dict[str, tuple[float, float]] = {}
    print(f"model {model.name}, {args.threads} threads, {args.tokens} tokens, {args.rounds} rounds")
    print(f"{'build':<12} {'decode tok/s':>12} {'prompt tok/s':>12}  instruction sets")
    for name, _ in builds:
        good = [r for r in results[name] if "error" not in r]
        if not good:
            print(f"{name:<12} {'failed':>12} {'':>12}  {results[name][0]['error']}")
            continue
        decode = statistics.median(
            float(r["decode_tokens"]) / float(r["decode_s"])  # type: ignore[arg-type]
            for r in good
        )
        prompt = statistics.median(
            float(r["prompt_tokens"]) / float(r["prompt_s"])  # type: ignore[arg-type]
            for r in good
        )
        speeds[name] = (decode, prompt)
        sets = str(good[0]["system_info"]).replace("CPU : ", "").replace(" = 1", "")
        print(f"{name:<12} {decode:>12.1f} {prompt:>12.1f}  {sets[:70]}")
    base = speeds.get("installed")
    for name, (_, prompt) in speeds.items():
        if name != "installed" and base is not None:
            print(f"prompt ratio {name}/installed: {prompt / base[1]:.2f}")
    for name, (decode, _) in speeds.items():
        if name != "installed" and base is not None:
            print(f"decode ratio {name}/installed: {decode / base[0]:.2f}")


if __name__ == "__main__":
    main()
