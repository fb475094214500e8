"""Layer kinds from the ``archon.layers`` entry-point group reach the compiler, the runtime
and the CLI, and a broken plugin is skipped with a warning that names it.

The plugin is a real installed distribution: the test writes a tiny package and its
``.dist-info`` (``METADATA`` + ``entry_points.txt``, what ``pip install`` leaves behind) into
a temporary directory, which ``importlib.metadata`` finds once it is on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archon.layers import PluginError, Registry, load_builtin_layers, load_plugins

ROOT = Path(__file__).resolve().parents[2]

PLUGIN_MODULE = '''
"""A third-party layer kind: shout every candidate."""

from collections.abc import Sequence
from typing import ClassVar

from archon.layers.base import Flow, Layer, LayerContext, LayerEstimate, LayerParams
from archon.values import Candidates, Payload


class ShoutParams(LayerParams):
    """How loud."""

    marks: int = 1


class Shout(Layer[ShoutParams]):
    """Upper-case every candidate and add exclamation marks (no model call)."""

    kind: ClassVar[str] = "shout"
    Params = ShoutParams
    consumes = (Candidates,)
    produces = Candidates

    @classmethod
    def estimate(
        cls, params: ShoutParams, query_tokens: int, inputs: Sequence[Flow]
    ) -> LayerEstimate:
        return LayerEstimate(output=Flow(sum(f.items for f in inputs), 0))

    async def run(
        self, ctx: LayerContext, params: ShoutParams, inputs: Sequence[Payload]
    ) -> Payload:
        items = [c for payload in inputs if isinstance(payload, Candidates) for c in payload.items]
        loud = "!" * params.marks
        return Candidates(items=tuple(
            c.model_copy(update={"text": c.text.upper() + loud}) for c in items
        ))


NotALayer = 42


class Impostor(Shout):
    """Claims a built-in kind's name."""

    kind: ClassVar[str] = "vote"
'''

ENTRY_POINTS = """
[archon.layers]
shout = archon_shout_plugin:Shout
broken = archon_shout_plugin_missing:Nope
number = archon_shout_plugin:NotALayer
"""

PIPE = """
pipeline loud {
  generate(models = ["m"])
  shout(marks = 3)
}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the plugin package and its distribution metadata."""
    root = tmp_path / "site"
    (root / "archon_shout_plugin").mkdir(parents=True)
    (root / "archon_shout_plugin" / "__init__.py").write_text(PLUGIN_MODULE)
    info = root / "archon_shout_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: archon-shout-plugin\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def _archon(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "archon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugins_load_and_broken_ones_are_named_and_skipped(
    site: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.syspath_prepend(str(site))
    registry = load_builtin_layers()
    with caplog.at_level("WARNING", logger="archon.layers"):
        added = load_plugins(registry)
    assert added == ["shout"] and "shout" in registry
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    broken = next(w for w in warnings if "'broken'" in w)
    assert "archon_shout_plugin_missing:Nope" in broken and "archon-shout-plugin 0.1.0" in broken
    assert "ModuleNotFoundError" in broken
    assert any("'number'" in w and "not a Layer class" in w for w in warnings)


def test_strict_loading_raises_and_a_clashing_kind_is_refused(
    site: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match="broken"):
        load_plugins(load_builtin_layers(), strict=True)
    twice = Registry()
    assert load_plugins(twice) == ["shout"]
    with caplog.at_level("WARNING", logger="archon.layers"):
        assert load_plugins(twice) == ["shout"]  # the same class again is not a clash
        (info,) = [p for p in site.iterdir() if p.name.endswith(".dist-info")]
        (info / "entry_points.txt").write_text(
            "[archon.layers]\nfake = archon_shout_plugin:Impostor\n"
        )
        clash = load_builtin_layers()
        assert load_plugins(clash) == []
    assert any(
        "'fake'" in r.getMessage() and "already registered" in r.getMessage()
        for r in caplog.records
    )


def test_the_cli_checks_runs_and_lists_a_plugin_kind(site: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "loud.pipe"
    pipe.write_text(PIPE)
    checked = _archon(site, "check", str(pipe), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok" in checked.stdout
    assert "layer plugin 'broken'" in checked.stderr  # named, and the command still works
    kinds = _archon(site, "kinds", "--format", "json", cwd=tmp_path)
    assert kinds.returncode == 0, kinds.stderr
    assert "shout" in [k["kind"] for k in json.loads(kinds.stdout)]
    graph = _archon(site, "graph", str(pipe), "--format", "json", cwd=tmp_path)
    assert graph.returncode == 0 and '"kind": "shout"' in graph.stdout


def test_the_public_api_compiles_and_runs_a_plugin_kind(site: Path, tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        import archon
        from archon.runtime.clients.fake import ScriptedClient
        pipeline = archon.compile_source({PIPE!r})
        result = archon.run_sync(pipeline, "hi", client=ScriptedClient([(None, "yes")]))
        print(result.answer)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "YES!!!"


def test_lazy_plugins_are_known_by_name_and_imported_on_first_use(
    site: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "archon_shout_plugin", raising=False)
    registry = load_builtin_layers()
    with caplog.at_level("WARNING", logger="archon.layers"):
        added = load_plugins(registry, lazy=True)
        # a missing package is reported at once, without importing anything
        assert added == ["shout", "number"] and "archon_shout_plugin" not in sys.modules
        (missing,) = [r.getMessage() for r in caplog.records]
        assert "layer plugin 'broken' (archon_shout_plugin_missing:Nope" in missing
        assert "archon-shout-plugin 0.1.0" in missing and "ModuleNotFoundError" in missing
        assert {"shout", "number"} <= set(registry.kinds())
        assert registry.get("shout").kind == "shout" and "archon_shout_plugin" in sys.modules
        assert "number" not in registry  # the other failures surface on first use
    assert "not a Layer class" in caplog.records[-1].getMessage()
    assert "number" not in registry.kinds()


def test_a_lazy_plugin_must_be_named_after_its_kind(
    site: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.syspath_prepend(str(site))
    (info,) = [p for p in site.iterdir() if p.name.endswith(".dist-info")]
    (info / "entry_points.txt").write_text(
        "[archon.layers]\nloud = archon_shout_plugin:Shout\nvote = archon_shout_plugin:Shout\n"
        "Shout-Layer = archon_shout_plugin:Shout\n"
    )
    registry = load_builtin_layers()
    with caplog.at_level("WARNING", logger="archon.layers"):
        # a name that cannot be a kind is loaded at once, as without lazy
        assert load_plugins(registry, lazy=True) == ["loud", "shout"]
        assert "loud" not in registry and "shout" in registry
    messages = [r.getMessage() for r in caplog.records]
    assert any("'vote'" in m and "already registered" in m for m in messages)
    assert any(
        "'loud'" in m and "its kind is 'shout'; name the entry point after the kind" in m
        for m in messages
    )
    (info / "entry_points.txt").write_text("[archon.layers]\nloud = archon_shout_plugin:Shout\n")
    strict = load_builtin_layers()
    assert load_plugins(strict, lazy=True, strict=True) == ["loud"]
    with pytest.raises(PluginError, match=r"'loud'.*its kind is 'shout'"):
        strict.get("loud")
