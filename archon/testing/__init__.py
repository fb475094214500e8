"""Conformance suites for extension points (imported by tests only, never by the library)."""

from __future__ import annotations

from archon.testing.client_contract import ClientContract
from archon.testing.layer_contract import GARBAGE, LayerContract

__all__ = ["GARBAGE", "ClientContract", "LayerContract"]
