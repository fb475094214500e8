"""The built wheel ships the named datasets, and an installed copy loads them.

The wheel is built from a copy of the sources (so stale ``build/`` folders of the checkout
cannot leak into it), installed with ``pip install --target`` into a temporary folder, and
used from a ``python`` whose path holds that folder and not the checkout. Offline: the wheel
is built with the environment's setuptools (``--no-build-isolation``; the ``dev`` extra
installs a recent enough one). About 5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import pytest

from archon.eval.datasets import builtin_datasets

ROOT = Path(__file__).resolve().parents[2]
MIN_SETUPTOOLS = 77  # pyproject's build requirement (PEP 639 ``license = "..."``)

PROBE = """
import json, os, sys
import archon
from archon.eval import load_dataset
mbpp = load_dataset("mbpp")
arithmetic = load_dataset("bigbench/arithmetic")
arena = load_dataset("arena_hard")
print(json.dumps({
    "archon": archon.__file__,
    "mbpp": [len(mbpp), mbpp.metric, mbpp.source],
    "arithmetic": len(arithmetic),
    "references": all(item.references for item in arena.items),
}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{args[:4]}...\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    major = int(version("setuptools").split(".")[0])
    if major < MIN_SETUPTOOLS:
        pytest.skip(
            f"setuptools {version('setuptools')} cannot build the wheel offline;"
            f" pip install 'setuptools>={MIN_SETUPTOOLS}' (the dev extra does)"
        )
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "archon", source / "archon", ignore=ignore)
    out = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "-w", str(out), str(source)],
        cwd=work,
    )  # fmt: skip
    (built,) = out.glob("archon_pipe-*.whl")
    return built


def test_the_wheel_lists_every_named_dataset_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "archon/eval/data/ATTRIBUTION.md" in names
    expected = {
        f"archon/eval/data/{file}"
        for entry in builtin_datasets().named().values()
        for file in (entry.file, entry.reference)
        if file is not None
    }
    assert len(expected) >= 18 and expected <= names, sorted(expected - names)
    assert "archon/dsl/grammar.lark" in names and "archon/py.typed" in names


def test_an_installed_wheel_loads_named_datasets(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(target), str(wheel)],
        cwd=tmp_path,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("ARCHON_DATA", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    report = json.loads(_run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env))
    assert Path(report["archon"]).is_relative_to(target)  # not the checkout
    count, metric, source = report["mbpp"]
    assert (count, metric) == (5, "code")
    assert Path(source) == target / "archon" / "eval" / "data" / "mbpp" / "sample.jsonl"
    assert report["arithmetic"] == 100 and report["references"] is True


USER_PIPE = """
models { m = model("openai/served", api_base = "{base}") }
pipeline mine {
  drafts = generate(models = [m], samples = 2, max_tokens = 64)
  vote() <- drafts
}
"""


@pytest.fixture()
def chat_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback OpenAI-compatible server answering every chat with a short program."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.path)
            if not self.path.endswith("/chat/completions"):
                self.send_response(404)
                self.end_headers()
                return
            request = json.loads(body)
            reply = {
                "id": f"chatcmpl-{len(seen)}",
                "model": request.get("model", "served"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "```python\nx = 4\n```"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()


def test_an_installed_wheel_checks_and_evaluates_a_users_pipe(
    wheel: Path, tmp_path: Path, chat_server: tuple[str, list[str]]
) -> None:
    """`archon check` and `archon eval` of a user's own .pipe, from a folder outside the
    repository, with only the installed wheel on the path (the OpenAI-compatible route)."""
    target = tmp_path / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(target), str(wheel)],
        cwd=tmp_path,
    )  # fmt: skip
    base, seen = chat_server
    work = tmp_path / "user"
    work.mkdir()
    (work / "mine.pipe").write_text(USER_PIPE.replace("{base}", base), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("ARCHON_DATA", "PYTHONPATH")}
    env.update(PYTHONPATH=str(target), ARCHON_HOME=str(tmp_path / "home"))
    archon = [sys.executable, "-m", "archon"]
    assert "mine" in _run([*archon, "check", "mine.pipe"], cwd=work, env=env)
    for dataset in ("bigbench/arithmetic", "mbpp"):
        out = _run(
            [*archon, "eval", "mine.pipe", "--dataset", dataset, "--limit", "2",
             "--no-cache", "--records", f"{dataset.replace('/', '-')}.jsonl"],
            cwd=work,
            env=env,
        )  # fmt: skip
        assert "2/2" in out, out
    assert len([p for p in seen if p.endswith("/chat/completions")]) == 2 * 2 * 2
    for name in ("bigbench-arithmetic.jsonl", "mbpp.jsonl"):  # one record per item
        assert len((work / name).read_text(encoding="utf-8").splitlines()) == 2
