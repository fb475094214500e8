"""Kinds registered by name load on first lookup, once; listing names loads nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archon.layers import Registry, RegistryError, UnknownLayerKind, builtin_kind_names
from archon.layers.base import AnyLayer
from archon.layers.fuse import Fuse
from archon.layers.generate import Generate
from archon.layers.vote import Vote

ROOT = Path(__file__).resolve().parents[2]


class Loader:
    """A loader that counts its calls and returns ``layer``."""

    def __init__(self, layer: type[AnyLayer] | None) -> None:
        self.layer = layer
        self.calls = 0

    def __call__(self) -> type[AnyLayer] | None:
        self.calls += 1
        return self.layer


def test_a_lazy_kind_is_loaded_on_first_lookup_only() -> None:
    registry = Registry()
    load = Loader(Vote)
    registry.register_lazy("vote", load)
    assert registry.kinds() == ("vote",) and load.calls == 0
    assert "vote" in registry and load.calls == 1
    assert registry.get("vote") is Vote and list(registry) == [Vote]
    assert load.calls == 1


def test_a_misspelt_kind_is_suggested_from_names_without_loading() -> None:
    registry = Registry()
    load = Loader(Generate)
    registry.register_lazy("generate", load)
    with pytest.raises(UnknownLayerKind, match="did you mean 'generate'"):
        registry.get("generat")
    assert "generat" not in registry
    assert load.calls == 0


def test_a_loader_that_gives_up_makes_the_kind_unknown() -> None:
    registry = Registry()
    load = Loader(None)
    registry.register_lazy("shout", load)
    assert "shout" not in registry
    assert registry.kinds() == () and list(registry) == []
    with pytest.raises(UnknownLayerKind):
        registry.get("shout")
    assert load.calls == 1


def test_a_failing_loader_raises_and_stays_pending() -> None:
    registry = Registry()

    def broken() -> type[AnyLayer]:
        raise ImportError("boom")

    registry.register_lazy("vote", broken)
    for _ in range(2):
        with pytest.raises(ImportError, match="boom"):
            registry.get("vote")
    assert registry.kinds() == ("vote",)


def test_a_loaded_class_must_declare_the_registered_kind() -> None:
    registry = Registry()
    registry.register_lazy("vote", Loader(Fuse))
    with pytest.raises(RegistryError, match=r"registered lazily.*Fuse.*'fuse'"):
        registry.get("vote")


def test_lazy_names_are_checked_like_classes() -> None:
    registry = Registry([Vote])
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_lazy("vote", Loader(Vote))
    registry.register_lazy("fuse", Loader(Fuse))
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_lazy("fuse", Loader(Fuse))
    with pytest.raises(RegistryError, match="snake_case"):
        registry.register_lazy("Fuse", Loader(Fuse))


def test_registering_a_class_over_a_lazy_name_compares_the_classes() -> None:
    registry = Registry()
    registry.register_lazy("vote", Loader(Vote))
    assert registry.register(Vote) is Vote  # the same class again is not a clash
    registry.register_lazy("fuse", Loader(Fuse))

    class OtherFuse(Fuse):
        """Another class claiming the kind."""

    with pytest.raises(RegistryError, match="'fuse' is already registered"):
        registry.register(OtherFuse)


def test_a_copy_keeps_unloaded_kinds_lazy() -> None:
    registry = Registry()
    load = Loader(Vote)
    registry.register_lazy("vote", load)
    other = registry.copy()
    other.register(Fuse)
    assert other.kinds() == ("fuse", "vote") and registry.kinds() == ("vote",)
    assert load.calls == 0
    assert other.get("vote") is Vote and load.calls == 1


def test_threads_load_a_kind_once() -> None:
    registry = Registry()
    load = Loader(Vote)
    registry.register_lazy("vote", load)
    found: list[type[AnyLayer]] = []
    threads = [
        threading.Thread(target=lambda: found.append(registry.get("vote"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [Vote] * 8 and load.calls == 1


def test_the_default_registry_names_every_kind_and_imports_none() -> None:
    program = (
        "import json, sys\n"
        "from archon.layers import default_registry\n"
        "kinds = default_registry().kinds()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('archon.layers.'))\n"
        "print(json.dumps([kinds, loaded]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kinds, modules = json.loads(done.stdout)
    assert set(builtin_kind_names()) <= set(kinds)
    assert not {f"archon.layers.{kind}" for kind in builtin_kind_names()} & set(modules)
