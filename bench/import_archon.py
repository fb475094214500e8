"""Time of ``archon import-archon`` on generated Archon configs of many layers.

Run: ``python bench/import_archon.py [--layers 1000 2000 4000 6000] [--repeat 3]``. Each
config is a layer of generators followed by layers of one fuser (each fuses the previous
layer's candidates), written to a temporary file and translated with
:func:`archon.interop.archon_config.import_file` (read, translate, print the ``.pipe``). Prints
the best-of-N time per size, the time per layer, and the per-layer ratio between the largest
and smallest size (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from archon.interop.archon_config import import_file


def config(layers: int) -> dict[str, Any]:
    """An Archon config of ``layers`` layers: three generators, then one fuser per layer."""
    component = {"model": "m", "model_type": "Together_API", "temperature": 0.7, "samples": 1}
    first = [{"type": "generator", **component} for _ in range(3)]
    rest = [[{"type": "fuser", **component}] for _ in range(layers - 1)]
    return {"name": "deep", "layers": [first, *rest]}


def best_time(path: Path, repeat: int) -> float:
    """The fastest of ``repeat`` imports of ``path``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        import_file(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, nargs="+", default=[1000, 2000, 4000, 6000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_layer: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for layers in args.layers:
            path = Path(folder) / f"layers_{layers}.json"
            path.write_text(json.dumps(config(layers)), encoding="utf-8")
            seconds = best_time(path, args.repeat)
            per_layer[layers] = seconds / layers
            print(f"{layers:>6,} layers: {seconds:7.3f} s  {per_layer[layers] * 1e6:7.1f} µs/layer")
    small, large = min(per_layer), max(per_layer)
    ratio = per_layer[large] / per_layer[small]
    print(f"per-layer ratio {large:,} / {small:,}: {ratio:.2f} (1.0 = linear)")


if __name__ == "__main__":
    main()
