"""Wrong code that tries to forge a pass: every forger must pass 0 tests, in every isolation
mode, through ``run_tests`` and end to end through ``archon eval`` and the ``code`` metric.

Each forger implements ``add`` wrongly (or not at all) and adds one trick aimed at the
harness. No expected value below is 0 or 1, so a forger returning ``False``/``True`` cannot
pass by Python's ``True == 1``; the control (a correct ``add``) passes everything.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
from archon.cli import app
from archon.eval.items import EvalItem
from archon.eval.metrics import CodePassAt1, MetricContext, sandbox_runner
from archon.ir import Pipeline
from archon.runtime import Limits
from archon.runtime.clients.fake import ScriptedClient, last_user
from archon.sandbox import Sandbox, confine, run_tests
from archon.values import CompletionRequest

TESTS = [
    "assert add(1, 2) == 3",
    "assert add(-1, 8) == 7",
    "assert abs(add(0.5, 0.25) - 0.75) < 1e-9",
    "def check(candidate):\n    assert candidate(20, 22) == 42\n    assert candidate(2, 3) == 5\n"
    "\ncheck(add)\n",
    "assert add(2, 2) == 4, 'add(2, 2)'",
]

WRONG = "def add(a, b):\n    return a - b\n"

FAKE_RECORDS = (
    '{"kind": "setup", "status": "passed", "message": ""}\\n'
    + '{"kind": "test", "status": "passed", "message": ""}\\n' * 8
    + '{"op": "result", "status": "passed", "message": ""}\\n' * 8
    + '{"status": "ok", "value": ["i", "3"]}\\n{"compiled": true, "message": ""}\\n'
)

ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __sub__(self, other): return self
    def __rsub__(self, other): return self
    def __abs__(self): return 0
    def __bool__(self): return True
    def __hash__(self): return 0
"""

FORGERS = {
    "always_equal": ALWAYS_EQUAL + "def add(a, b):\n    return Anything()\n",
    "int_subclass": """
class Int(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __sub__(self, other): return Int(0)
    def __abs__(self): return 0
    __hash__ = int.__hash__
def add(a, b):
    return Int(a - b)
""",
    "float_subclass": """
class F(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __sub__(self, other): return F(0.0)
    def __lt__(self, other): return True
    __hash__ = float.__hash__
def add(a, b):
    return F(-1.5)
""",
    "patched_json": """
import json
json.dumps = lambda *a, **k: '{"kind": "test", "status": "passed", "message": ""}'
json.loads = lambda *a, **k: {"kind": "test", "status": "passed", "message": "",
                              "op": "result", "value": ["i", "3"]}
def add(a, b):
    return a - b
""",
    "fake_records_on_every_fd": f"""
import os
def spam():
    for fd in range(0, 256):
        try:
            os.write(fd, b'{FAKE_RECORDS}')
        except OSError:
            pass
spam()
def add(a, b):
    spam()
    return a - b
""",
    "prints_fake_records": f"""
import sys
print('{FAKE_RECORDS}')
sys.__stdout__.write('{FAKE_RECORDS}')
def add(a, b):
    print('{FAKE_RECORDS}', flush=True)
    return a - b
""",
    "os_exit_at_top_level": WRONG + "import os\nos._exit(0)\n",
    "os_exit_in_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "sys_exit_in_call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "exit_from_del_and_atexit": """
import atexit, os
atexit.register(os._exit, 0)
class Bomb:
    def __del__(self):
        os._exit(0)
_keep = Bomb()
def add(a, b):
    Bomb()
    raise SystemExit(0)
""",
    "signal_tricks": """
import os, signal
signal.signal(signal.SIGALRM, lambda *args: os._exit(0))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.setitimer(signal.ITIMER_REAL, 0.05)
def add(a, b):
    signal.signal(signal.SIGALRM, lambda *args: os._exit(0))
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    while True:
        pass
""",
    "kills_its_parents": """
import os, signal
def add(a, b):
    for target in (os.getppid(), -1, 1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    return a - b
""",
    # Top-level names such as ``abs = ...`` do shadow builtins in the tests, as in the
    # reference harness (a problem's function may be named ``sum``); builtins patched in the
    # candidate's own process do not.
    "patches_builtins": """
import builtins
builtins.abs = lambda x: 0
builtins.len = lambda x: 3
builtins.AssertionError = type("AssertionError", (Exception,), {})
def add(a, b):
    return a - b
""",
    "peeks_at_the_test_frame": """
import sys
def add(a, b):
    frame = sys._getframe(1)
    while frame is not None:
        found = [c for c in frame.f_code.co_consts if type(c) in (int, float) and c not in (a, b)]
        if frame.f_code.co_filename.startswith("<test") and found:
            return found[0]
        frame = frame.f_back
    return None
""",
    "hunts_the_heap": """
import gc
def add(a, b):
    try:
        for obj in gc.get_objects():
            if isinstance(obj, dict) and "status" in obj:
                obj["status"] = "passed"
                obj["value"] = ["i", "3"]
    except Exception:
        pass
    return a - b
""",
    "writes_its_own_result_file": """
import json, os
names = [["m", "add", "operator"], ["f", "abs"], ["v", "check", ["b", 1]]]
with open("res", "w") as f:
    f.write(json.dumps({"status": "ok", "names": names}))
os._exit(0)
""",
    "patches_the_runner": """
import sys
main = sys.modules["__main__"]
for name in ("encode", "_write_result", "_short"):
    if hasattr(main, name):
        setattr(main, name, lambda *a, **k: ["b", 1])
def add(a, b):
    return a - b
""",
    "patches_paths_and_modules": """
import posixpath, sys, os
posixpath.normpath = lambda p: "/tmp"
os.path.abspath = lambda p: "/tmp"
sys.modules["json"] = None
def add(a, b):
    return a - b
""",
    "huge_result": "def add(a, b):\n    return 'x' * 50_000_000\n",
    "opaque_repr": """
class Three:
    def __repr__(self): return "3"
    def __str__(self): return "3"
def add(a, b):
    return Three()
""",
    "returns_nan": "def add(a, b):\n    return float('nan')\n",
    "raises_a_fake_exception_name": """
class StopIteration(Exception):
    pass
def add(a, b):
    raise StopIteration("passed")
""",
}


def _modes() -> list[str]:
    return ["namespace", "audit-hook"] if confine.bubblewrap() else ["audit-hook"]


@pytest.fixture(params=_modes())
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    if request.param == "audit-hook":
        monkeypatch.setenv(confine.FALLBACK_ENV, "fallback")  # the fallback needs the opt-in
    return Sandbox(isolation=request.param)


def _passed(code: str, sandbox: Sandbox) -> tuple[int, list[str]]:
    report = asyncio.run(run_tests(code, TESTS, timeout_s=2.0, sandbox=sandbox))
    return report.passed, [o.status for o in report.outcomes]


def test_the_control_passes_everything(sandbox: Sandbox) -> None:
    passed, statuses = _passed("def add(a, b):\n    return a + b\n", sandbox)
    assert passed == len(TESTS), statuses


@pytest.mark.parametrize("name", sorted(FORGERS))
def test_forger_passes_nothing(name: str, sandbox: Sandbox) -> None:
    passed, statuses = _passed(FORGERS[name], sandbox)
    assert passed == 0, statuses


# --- end to end: archon eval on a HumanEval-style file, the forgers as the model's answers --

PIPE = 'models { m = "fake/m" }\npipeline one { generate(models = [m], max_tokens = 512) }\n'
PROMPT = 'def add(a, b):\n    """Add two numbers ({name})."""\n'
CHECK = (
    "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(-1, 8) == 7\n"
    "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n"
)


def _dataset(path: Path, names: list[str]) -> Path:
    rows = [
        {"task_id": name, "prompt": PROMPT.format(name=name), "entry_point": "add", "test": CHECK}
        for name in names
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _answers(answers: dict[str, str]) -> ScriptedClient:
    def reply(request: CompletionRequest) -> str:
        text = last_user(request)
        name = next(n for n in answers if f"({n})" in text)
        return f"```python\n{answers[name]}\n```"

    return ScriptedClient(reply)


def _eval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answers: dict[str, str]
) -> dict[str, object]:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))

    def make_client(
        pipeline: Pipeline, model_path: Path | None = None, connection: object = None
    ) -> ScriptedClient:
        return _answers(answers)

    monkeypatch.setattr(eval_cmds, "make_client", make_client)
    pipe = tmp_path / "one.pipe"
    pipe.write_text(PIPE)
    data = _dataset(tmp_path / "forgers.jsonl", sorted(answers))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["eval", str(pipe), "-d", str(data), "--no-cache", "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    report: dict[str, object] = json.loads(out.read_text())
    return report


def test_archon_eval_scores_every_forger_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = _eval(monkeypatch, tmp_path, FORGERS)
    assert report["done"] == len(FORGERS)
    assert report["accuracy"] == 0.0


def test_archon_eval_scores_the_control_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    honest = {"honest": "def add(a, b):\n    return a + b\n", "wrong": WRONG}
    report = _eval(monkeypatch, tmp_path, honest)
    assert report["done"] == 2 and report["accuracy"] == 0.5


# --- a prompt's helper redefined by the answer (HumanEval/32 checks roots with ``poly``) ------

ROOT_ITEM = EvalItem(
    id="root",
    turns=("find a root",),
    code_prefix=(
        "import math\n\n"
        "def poly(xs, x):\n"
        "    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n\n"
        "def find_zero(xs):\n"
        '    """A root of the polynomial xs."""\n'
    ),
    entry_point="find_zero",
    tests=(
        "def check(candidate):\n"
        "    for xs in ([1, 2], [-6, 11, -6, 1], [3, 0, 0, 1]):\n"
        "        assert math.fabs(poly(xs, candidate(xs))) < 1e-4\n\n"
        "check(find_zero)\n",
    ),
)


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("def find_zero(xs):\n    return 12345.0\n\ndef poly(xs, x):\n    return 0.0\n", False),
        ("import math\nmath.fabs = lambda x: 0.0\ndef find_zero(xs):\n    return 9.0\n", False),
        (
            "def find_zero(xs):\n    lo, hi = -10.0, 10.0\n"
            "    while poly(xs, lo) * poly(xs, hi) > 0:\n        lo, hi = lo * 2, hi * 2\n"
            "    for _ in range(200):\n        mid = (lo + hi) / 2\n"
            "        if poly(xs, lo) * poly(xs, mid) <= 0:\n            hi = mid\n"
            "        else:\n            lo = mid\n    return lo\n",
            True,
        ),
    ],
)
def test_an_answer_cannot_redefine_the_prompts_helpers(answer: str, ok: bool) -> None:
    ctx = MetricContext(client=None, limits=Limits(), runner=sandbox_runner)
    score = asyncio.run(CodePassAt1(timeout_s=3.0).score(ROOT_ITEM, (answer,), ctx))
    assert score.correct is ok, score.detail


def test_a_deeply_nested_reply_is_only_an_error() -> None:
    # Written straight to the protocol channel: archon's JSON decoder must not crash on it.
    code = (
        "import os\n"
        "def add(a, b):\n"
        "    line = b'[' * 200000 + b']' * 200000 + b'\\n'\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, line)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return a - b\n"
    )
    report = asyncio.run(run_tests(code, TESTS, timeout_s=2.0))
    assert report.passed == 0


@pytest.mark.parametrize("truth", ["True", "False"])
def test_an_object_cannot_stand_for_a_truth_value(truth: str, sandbox: Sandbox) -> None:
    code = f"class Answer:\n    def __bool__(self): return {truth}\n"
    code += "def positive(x):\n    return Answer()\n"
    tests = ["assert positive(5)", "assert not positive(-5)", "assert positive(5) != False"]
    report = asyncio.run(run_tests(code, tests, sandbox=sandbox))
    assert report.passed == 0, [o.message for o in report.outcomes]
