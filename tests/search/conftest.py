"""Fixtures for the search tests."""

from __future__ import annotations

import pytest

from archon.ir import Pipeline
from archon.layers import default_registry
from archon.layers.registry import Registry

from .helpers import DISCRETE, FULL, GENERATE, compile_text


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="session")
def full(registry: Registry) -> Pipeline:
    return compile_text(FULL, registry)


@pytest.fixture(scope="session")
def discrete(registry: Registry) -> Pipeline:
    return compile_text(DISCRETE, registry)


@pytest.fixture(scope="session")
def generate_template(registry: Registry) -> Pipeline:
    return compile_text(GENERATE, registry)
