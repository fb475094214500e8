"""docs/extending.md runs as it stands.

The page's code blocks, per ``## `` section:

* a Python block whose first line is ``# file: NAME.py`` is a module of the example plugin: it
  is imported under ``NAME`` (a ``test_*`` module's ``Test*`` classes become tests of this
  file, so the contract suites really run on the examples);
* a ``toml`` block declares entry points: they are installed as a real distribution (a
  ``.dist-info`` folder on ``sys.path``), found by ``importlib.metadata`` like any plugin's;
* the other Python blocks run in order, in one namespace per section, with the registries'
  per-process caches cleared before and after.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import re
import sys
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import archon.eval.datasets
import archon.eval.metrics
import archon.layers

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
_BLOCK = re.compile(r"^```(python|toml)\n(.*?)^```", re.S | re.M)
_FILE = re.compile(r"^# file: (\w+)\.py\n")


@dataclass
class Section:
    title: str
    modules: dict[str, str] = field(default_factory=dict)
    entry_points: dict[str, dict[str, str]] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)


def sections(text: str) -> list[Section]:
    """The page's sections that hold code, with their blocks sorted by role. Each block is
    preceded by blank lines up to its place in the page, so tracebacks give the page's lines."""
    found = []
    for heading in re.finditer(r"^## (.*)$", text, flags=re.M):
        end = text.find("\n## ", heading.end())
        section = Section(heading.group(1).strip())
        for block in _BLOCK.finditer(text, heading.end(), len(text) if end < 0 else end):
            language, code = block.group(1), block.group(2)
            named = _FILE.match(code)
            code = "\n" * text.count("\n", 0, block.start(2)) + code
            if language == "toml":
                tables = tomllib.loads(code)["project"]["entry-points"]
                section.entry_points.update(tables)
            elif named:
                section.modules[named.group(1)] = code
            else:
                section.scripts.append(code)
        if section.modules or section.scripts:
            found.append(section)
    return found


SECTIONS = sections(DOC.read_text(encoding="utf-8"))


def _import(name: str, code: str) -> types.ModuleType:
    """``code`` as the module ``name`` (so ``from name import ...`` and entry points find it)."""
    module = types.ModuleType(name)
    module.__file__ = str(DOC)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=str(DOC))
    sys.modules[name] = module
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


# The example plugins are imported once, the plugin modules first; the Test* classes of the
# page's test modules are collected from here.
for _section in SECTIONS:
    for _name, _code in sorted(_section.modules.items(), key=lambda m: m[0].startswith("test_")):
        _module = _import(_name, _code)
        if _name.startswith("test_"):
            for _attr, _value in vars(_module).items():
                if _attr.startswith("Test") and isinstance(_value, type):
                    globals()[_attr] = _value


def _clear_registries() -> None:
    archon.layers.default_registry.cache_clear()
    archon.eval.metrics._installed.cache_clear()
    archon.eval.datasets._installed.cache_clear()


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder on ``sys.path`` for a distribution's metadata; the registries' caches
    are cleared around the test, so installed plugins are looked up again."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ARCHON_DATA", raising=False)
    _clear_registries()
    yield tmp_path
    _clear_registries()
    importlib.invalidate_caches()


def install(folder: Path, entry_points: dict[str, dict[str, str]]) -> None:
    """Declare ``entry_points`` as those of an installed distribution in ``folder``."""
    info = folder / "archon_docs_example-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: archon-docs-example\nVersion: 1.0\n", encoding="utf-8"
    )
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in names.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    importlib.invalidate_caches()


def test_the_page_covers_the_four_extension_points() -> None:
    titles = [s.title for s in SECTIONS]
    assert titles == ["A layer kind", "A model client", "A metric", "A dataset family"]
    groups = {group for s in SECTIONS for group in s.entry_points}
    assert groups == {"archon.layers", "archon.metrics", "archon.datasets"}
    tested = {name for name, value in globals().items() if name.startswith("Test")}
    assert {"TestShout", "TestEchoProviderClient"} <= tested


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_section_runs(section: Section, distribution: Path) -> None:
    if section.entry_points:
        install(distribution, section.entry_points)
    namespace: dict[str, object] = {"__name__": "docs_extending"}
    for code in section.scripts:
        exec(compile(code, str(DOC), "exec"), namespace)


def test_the_layer_plugin_is_lazy(distribution: Path) -> None:
    """The kind's entry point is named after it: listing it imports nothing."""
    [layers] = [s for s in SECTIONS if "archon.layers" in s.entry_points]
    install(distribution, layers.entry_points)
    (distribution / "archon_shout.py").write_text(layers.modules["archon_shout"], encoding="utf-8")
    importlib.invalidate_caches()
    saved = sys.modules.pop("archon_shout")
    try:
        registry = archon.layers.default_registry()
        assert "shout" in registry.kinds()
        assert "archon_shout" not in sys.modules
        assert registry.get("shout").kind == "shout"
        assert "archon_shout" in sys.modules
    finally:
        sys.modules["archon_shout"] = saved
