"""Parse time and peak memory of a ``.pipe`` file holding one long triple-quoted string.

Run: ``python bench/parse_long_string.py [--mb 1 5 50]``. The string terminal is an unrolled
loop (``[^"]*(?:"(?!"")[^"]*)*``), so the time grows linearly with the string; the 1 MB file
size limit refuses larger files before they are parsed, so sizes above 1 MB measure the
parser alone (``archon.dsl.parser.parse``), not the CLI.
"""

from __future__ import annotations

import argparse
import resource
import time

from archon.dsl.parser import lark_parser, parse


def _text(size: int) -> str:
    line = 'lorem ipsum "quoted" and ""doubled"" dolor\n'
    body = (line * (size // len(line) + 1))[:size].rstrip('"')
    return 'prompts {\n  p = """' + body + '"""\n}\npipeline x {\n  generate()\n}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lark_parser()
    parse("pipeline x { generate() }")  # builds the lexer once
    print(f"{'MB':>6} {'best s':>8} {'peak RSS MB':>12}")
    for mb in args.mb:
        text = _text(int(mb * 1_000_000))
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            parse(text)
            best = min(best, time.perf_counter() - started)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000
        print(f"{mb:>6g} {best:>8.3f} {peak:>12.0f}")


if __name__ == "__main__":
    main()
