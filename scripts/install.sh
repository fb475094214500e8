#!/usr/bin/env bash
# Install archon with a llama.cpp engine that runs on this CPU.
#
#   scripts/install.sh [EXTRAS]        e.g. scripts/install.sh local   (the default)
#                                           scripts/install.sh dev,local,server,samplers
#
# Why a script: llama-cpp-python compiles llama.cpp with -march=native unless told otherwise.
# A native build traps with SIGILL (Illegal instruction) on machines whose CPU advertises
# AMX or AVX-512 that the hypervisor does not enable, and pip's wheel cache keys on the
# package version only, so it silently reuses a native wheel built earlier. This script
#   1. builds for a portable x86-64 baseline (AVX2, FMA, F16C; never AMX), adding AVX-512
#      only where a probe program that executes those instructions runs on this machine;
#   2. keeps the wheel in a folder named after its build flags, so a later install reuses
#      it only when the flags are the same;
#   3. installs archon itself, editable, with the extras asked for.
#   4. notes (without failing) when bubblewrap (`bwrap`) is missing: layers that run
#      model-written code refuse to start without it unless ARCHON_SANDBOX=fallback is set.
# `archon models doctor` then shows the CPU features, the engine's build flags and whether the
# engine runs here. Set ARCHON_ENGINE_CMAKE_ARGS to override the flags entirely.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${1:-local}"
LLAMA_VERSION="0.3.36"
PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
WHEEL_ROOT="${ARCHON_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archon/engine-wheels}"

# Runs a tiny C program compiled with FLAGS whose body executes the instructions; prints
# "yes" when it exits 0 (the CPU and the OS both enable them), "no" otherwise (SIGILL).
probe() {
  local flags="$1" body="$2" dir
  dir="$(mktemp -d)"
  printf '#include <immintrin.h>\nint main(void){%s}\n' "$body" >"$dir/p.c"
  if cc $flags -O0 -o "$dir/p" "$dir/p.c" 2>/dev/null && "$dir/p" 2>/dev/null; then
    echo yes
  else
    echo no
  fi
  rm -rf "$dir"
}

engine_cmake_args() {
  local args="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
  args="$args -DGGML_AMX_BF16=OFF"
  if [ "$(uname -m)" != "x86_64" ]; then
    echo "$args"   # other architectures: llama.cpp's own portable defaults with NATIVE off
    return
  fi
  args="$args -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  local avx512 vnni bf16
  avx512="$(probe "-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512cd" \
    'volatile int x=1; __m512i a=_mm512_set1_epi32(x); a=_mm512_add_epi32(a,a);
     __m512i b=_mm512_abs_epi8(a); __m256i c=_mm256_maskz_mov_epi32(0x0f,_mm256_set1_epi32(x));
     return (_mm512_reduce_add_epi32(a) + _mm512_reduce_add_epi32(b) + _mm256_extract_epi32(c,0)) > 0 ? 0 : 1;')"
  if [ "$avx512" = yes ]; then
    args="$args -DGGML_AVX512=ON"
    vnni="$(probe "-mavx512f -mavx512vnni" \
      'volatile int x=1; __m512i a=_mm512_set1_epi32(x);
       a=_mm512_dpbusd_epi32(a,a,a); return _mm512_reduce_add_epi32(a) > 0 ? 0 : 1;')"
    bf16="$(probe "-mavx512f -mavx512bf16" \
      'volatile float x=1.f; __m512 a=_mm512_set1_ps(x); __m512bh b=_mm512_cvtne2ps_pbh(a,a);
       a=_mm512_dpbf16_ps(a,b,b); return _mm512_reduce_add_ps(a) > 0 ? 0 : 1;')"
    [ "$vnni" = yes ] && args="$args -DGGML_AVX512_VNNI=ON"
    [ "$bf16" = yes ] && args="$args -DGGML_AVX512_BF16=ON"
  else
    args="$args -DGGML_AVX512=OFF"
  fi
  echo "$args"
}

case ",$EXTRAS," in
  *,local,*|*,server,*) NEED_ENGINE=1 ;;
  *) NEED_ENGINE=0 ;;
esac

"$PYTHON" -m pip install --quiet --upgrade pip
if [ "$NEED_ENGINE" = 1 ]; then
  ARGS="${ARCHON_ENGINE_CMAKE_ARGS:-$(engine_cmake_args)}"
  KEY="$(printf '%s %s' "$LLAMA_VERSION" "$ARGS" | sha256sum | cut -c1-16)"
  WHEELS="$WHEEL_ROOT/$KEY"
  echo "== llama.cpp engine flags: $ARGS"
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "== building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp: several minutes)"
    mkdir -p "$WHEELS"
    printf '%s\n' "$ARGS" >"$WHEELS/cmake-args.txt"
    CMAKE_ARGS="$ARGS" "$PYTHON" -m pip wheel --quiet --no-deps --no-cache-dir \
      --no-binary llama-cpp-python -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  # --force-reinstall: replace a native build installed earlier by a plain pip install.
  "$PYTHON" -m pip install --quiet --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  "$PYTHON" -m pip install --quiet --find-links "$WHEELS" -e ".[$EXTRAS]"
else
  "$PYTHON" -m pip install --quiet -e ".[$EXTRAS]"
fi
echo "== installed archon with extras [$EXTRAS]"
if ! command -v bwrap >/dev/null 2>&1; then
  echo "note: bubblewrap (bwrap) is not installed: layers that run model-written code" >&2
  echo "      (unit_test_evaluate, execute, repair, the code metric...) will refuse to start." >&2
  echo "      Install it: sudo apt-get install bubblewrap   (Fedora: dnf install bubblewrap)" >&2
  echo "      or opt into the weaker fallback with ARCHON_SANDBOX=fallback (not a boundary)." >&2
fi
