"""Peak memory and time of ``archon check`` on adversarial ``.pipe`` programs of about 1 MB.

Run: ``python bench/pipe_sizes.py`` (options: ``--kb 1000`` the size of each generated
file, ``--only a c`` some shapes, ``--timeout 120`` seconds per run, ``--mem-mb 3000`` an
address-space cap per run so a blow-up ends in MemoryError instead of swapping the machine).

Each shape is written to a temporary project and checked by ``python -m archon check`` in a
fresh process; the table gives, per shape, the input bytes (all files the program reads),
the child's peak RSS (``os.wait4``), RSS per input byte, wall seconds, the child's CPU
seconds (user + system: steadier than wall time on a loaded machine), the exit code and the
first line of output. Goal: every shape under 300 MB and 10 s, ending in ``ok`` (exit 0) or
a clean diagnostic (exit 1): never a traceback.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HEADER = 'models { m = "local/qwen2.5-coder-0.5b" }\n'
PER_FILE = 1_000_000  # SourceLimits().max_bytes
TOTAL = 2_000_000  # SourceLimits().max_total_bytes


def _fill(size: int, head: str, unit: Callable[[int], str], tail: str) -> str:
    """``head`` + ``unit(0)`` + ``unit(1)`` + ... + ``tail``, about ``size`` characters."""
    parts = [head]
    total = len(head) + len(tail)
    index = 0
    while total < size:
        piece = unit(index)
        parts.append(piece)
        total += len(piece)
        index += 1
    parts.append(tail)
    return "".join(parts)


def many_layers(size: int) -> dict[str, str]:
    text = _fill(size, HEADER + "pipeline p {\n", lambda i: "  critique(model = m)\n", "}\n")
    return {"main.pipe": text}


def layers_at_node_limit(size: int) -> dict[str, str]:
    lines = "".join("  critique(model = m)\n" for _ in range(19_999))
    gen = "  generate(models = [m])\n"
    return {"main.pipe": HEADER + "pipeline p {\n" + gen + lines + "}\n"}


def many_pipelines(size: int) -> dict[str, str]:
    unit = lambda i: f"pipeline p{i} {{ generate(models = [m]) }}\n"  # noqa: E731
    return {"main.pipe": _fill(size, HEADER, unit, "")}


def huge_prompt(size: int) -> dict[str, str]:
    body = ("Answer the question carefully. " * (size // 31 + 1))[: size - 200]
    text = (
        HEADER
        + f'prompts {{ p = """{body}""" }}\n'
        + "pipeline p { generate(models = [m], prompt = p) }\n"
    )
    return {"main.pipe": text}


def number_list(size: int) -> dict[str, str]:
    head = HEADER + "pipeline p {\n  generate(models = [m], stop = [\n"
    return {"main.pipe": _fill(size, head, lambda i: f"{i},", "])\n}\n")}


def string_list(size: int) -> dict[str, str]:
    head = HEADER + "pipeline p {\n  generate(models = [m], stop = [\n"
    return {"main.pipe": _fill(size, head, lambda i: f'"s{i}",', "])\n}\n")}


def deep_nesting(size: int) -> dict[str, str]:
    depth = 60
    nest = "[" * depth + "1" + "]" * depth
    head = HEADER + "pipeline p {\n  generate(models = [m])\n"
    unit = lambda i: f"  critique(model = m, x = {nest})\n"  # noqa: E731
    return {"main.pipe": _fill(size, head, unit, "}\n")}


def deep_repeats(size: int) -> dict[str, str]:
    depth = 60
    nest = "repeat 1 { " * depth + "critique(model = m)" + " }" * depth
    head = HEADER + "pipeline p {\n  generate(models = [m])\n"
    return {"main.pipe": _fill(size, head, lambda i: f"  {nest}\n", "}\n")}


def comments(size: int) -> dict[str, str]:
    head = HEADER + "pipeline p {\n  generate(models = [m])\n"
    unit = lambda i: "  # a comment line that says nothing at all\n\n   \t\n"  # noqa: E731
    return {"main.pipe": _fill(size, head, unit, "}\n")}


def block_explosion(size: int) -> dict[str, str]:
    body = "".join("  critique(model = m)\n" for _ in range(50))
    text = (
        HEADER
        + f"block b50() {{\n{body}}}\n"
        + "block b2500() { repeat 50 { b50() } }\n"
        + "pipeline p {\n  generate(models = [m])\n"
        + "  repeat 1000000 { repeat 1000000 { b2500() } }\n}\n"
    )
    return {"main.pipe": text}


def many_blocks(size: int) -> dict[str, str]:
    body = "".join("  critique(model = m)\n" for _ in range(50))
    unit = lambda i: f"block b{i}() {{\n{body}}}\n"  # noqa: E731
    text = _fill(size - 2000, HEADER, unit, "")
    uses = "".join(f"  b{i}()\n" for i in range(60))
    return {"main.pipe": text + "pipeline p {\n  generate(models = [m])\n" + uses + "}\n"}


def syntax_error_at_end(size: int) -> dict[str, str]:
    unit = lambda i: f"pipeline p{i} {{ generate(models = [m]) critique(model = m) }}\n"  # noqa: E731
    return {"main.pipe": _fill(size - 20, HEADER, unit, "pipeline broken {\n")}


def _block_library(size: int, prefix: str) -> str:
    body = "".join("  critique(model = m)\n" for _ in range(20))
    return _fill(size, "", lambda i: f"block {prefix}{i}() {{\n{body}}}\n", "")


def imports_at_total(size: int) -> dict[str, str]:
    per_file = PER_FILE - 1000
    count = TOTAL // PER_FILE
    files: dict[str, str] = {}
    main = HEADER
    for index in range(count):
        files[f"lib{index}.pipe"] = _block_library(per_file, f"b{index}_")
        main += f'import "lib{index}.pipe"\n'
    used = TOTAL - sum(len(text) for text in files.values()) - len(main) - 200
    main += "# " + "x" * max(0, used) + "\n"
    main += "pipeline p {\n  generate(models = [m])\n  b0_0()\n}\n"
    files["main.pipe"] = main
    return files


def imports_over_total(size: int) -> dict[str, str]:
    files = {f"lib{i}.pipe": _block_library(PER_FILE - 1000, f"b{i}_") for i in range(20)}
    imports = "".join(f'import "lib{i}.pipe"\n' for i in range(20))
    main = HEADER + imports + "pipeline p {\n  generate(models = [m])\n  b0_0()\n}\n"
    return files | {"main.pipe": main}


def prompt_files(size: int) -> dict[str, str]:
    count = 200
    per = size // 50  # 4x the size in all: the total limit must refuse it
    files = {f"prompts/p{i}.txt": "Think step by step. " * (per // 20) for i in range(count)}
    entries = "".join(f'  p{i} = file("prompts/p{i}.txt")\n' for i in range(count))
    main = (
        HEADER
        + f"prompts {{\n{entries}}}\n"
        + "pipeline p { generate(models = [m], prompt = p0) }\n"
    )
    return files | {"main.pipe": main}


def long_line_of_errors(size: int) -> dict[str, str]:
    """One line with an unknown parameter per layer (about 16,000 diagnostics, under the node
    limit), each of which once printed the whole 1 MB line under it."""
    head = HEADER + "pipeline p { generate(models = [m])"
    unit = lambda i: f' critique(model = m, unknown_parameter_{i} = "not a parameter")'  # noqa: E731
    return {"main.pipe": _fill(size, head, unit, " }\n")}


SHAPES: dict[str, tuple[str, Callable[[int], dict[str, str]]]] = {
    "a": ("many layers, one pipeline", many_layers),
    "a2": ("20,000 layers (node limit)", layers_at_node_limit),
    "b": ("many pipelines", many_pipelines),
    "c": ("one huge prompt string", huge_prompt),
    "d": ("list of numbers", number_list),
    "e": ("list of strings", string_list),
    "f": ("nested lists, depth 60, repeated", deep_nesting),
    "f2": ("nested repeats, depth 60, repeated", deep_repeats),
    "g": ("comments and whitespace", comments),
    "h": ("repeat x block multiplication", block_explosion),
    "h2": ("many 50-layer blocks, 60 used", many_blocks),
    "i": ("syntax error at the end", syntax_error_at_end),
    "j": ("imports, total at the limit", imports_at_total),
    "j2": ("20 imports of 1 MB", imports_over_total),
    "k": ("200 file() prompts", prompt_files),
    "l": ("one long line of errors", long_line_of_errors),
}


def _limit_memory(megabytes: int) -> Callable[[], None]:
    def apply() -> None:
        cap = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def run_shape(
    key: str, size: int, timeout: float, mem_mb: int
) -> tuple[int, float, float, float, int | str, str]:
    """(input bytes, peak RSS MB, seconds, CPU seconds, exit code, first line of output)."""
    _, make = SHAPES[key]
    with tempfile.TemporaryDirectory(prefix=f"pipe-{key}-") as directory:
        root = Path(directory)
        (root / "archon.toml").write_text("")  # the project root: imports stay inside it
        total = 0
        for name, text in make(size).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            total += len(text.encode("utf-8"))
        with open(root / "out.txt", "wb") as out:
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "archon", "check", str(root / "main.pipe")],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                preexec_fn=_limit_memory(mem_mb) if mem_mb else None,
            )
            code: int | str
            try:
                _, status, usage = _wait(child.pid, timeout)
                code = os.waitstatus_to_exitcode(status)
            except TimeoutError:
                child.kill()
                _, _, usage = os.wait4(child.pid, 0)
                code = "timeout"
            seconds = time.perf_counter() - started
        output = (root / "out.txt").read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if "Traceback" in output or "MemoryError" in output:
        first = "TRACEBACK: " + (lines[-1] if lines else "")
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return total, rss_mb, seconds, usage.ru_utime + usage.ru_stime, code, first


def _wait(pid: int, timeout: float) -> tuple[int, int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return done, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=1000, help="size of each generated file")
    parser.add_argument("--only", nargs="*", choices=sorted(SHAPES), help="shapes to run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--mem-mb", type=int, default=3000, help="address-space cap per run")
    args = parser.parse_args()
    size = args.kb * 1000 - 2000  # a little under the per-file limit
    print("| shape | input bytes | peak RSS MB | RSS/input | seconds | CPU s | exit | first line |")
    print("|---|---|---|---|---|---|---|---|")
    for key in args.only or SHAPES:
        total, rss, seconds, cpu, code, first = run_shape(key, size, args.timeout, args.mem_mb)
        ratio = rss * 1024 * 1024 / max(total, 1)
        label = f"{key} {SHAPES[key][0]}"
        shown = first if len(first) <= 90 else first[:87] + "..."
        print(
            f"| {label} | {total:,} | {rss:.0f} | {ratio:.0f} | {seconds:.1f} | {cpu:.1f} |"
            f" {code} | {shown.replace('|', '/')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
