"""Checking a file looks up only the kinds it uses, so only their modules are imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon.compiler import check_file
from archon.layers import Registry, builtin_kind_names
from archon.layers.base import AnyLayer

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.pipe"))


def _recording_registry(loaded: set[str]) -> Registry:
    """The built-in kinds, registered lazily by loaders that note which kinds were loaded."""
    from archon.layers import load_builtin_layers

    builtins = load_builtin_layers()
    registry = Registry()
    for kind in builtin_kind_names():

        def load(kind: str = kind) -> type[AnyLayer]:
            loaded.add(kind)
            return builtins.get(kind)

        registry.register_lazy(kind, load)
    return registry


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_checking_an_example_loads_only_its_kinds(path: Path) -> None:
    loaded: set[str] = set()
    result = check_file(path, _recording_registry(loaded))
    assert result.pipeline is not None and not result.errors
    assert loaded == {node.kind for node in result.pipeline.nodes}


def test_a_misspelt_kind_is_reported_without_loading_any(tmp_path: Path) -> None:
    loaded: set[str] = set()
    source = tmp_path / "typo.pipe"
    source.write_text('pipeline p {\n  generat(models = ["m"])\n}\n')
    result = check_file(source, _recording_registry(loaded))
    assert [d.hint for d in result.errors] == ["did you mean 'generate'?"]
    assert loaded == set()
