"""``import-archon`` grows linearly with the number of layers: counted in Python function
calls (deterministic), 4x the layers costs about 4x the calls."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from archon.interop.archon_config import import_config


def _config(layers: int) -> dict[str, Any]:
    component = {"model": "m", "model_type": "Together_API", "temperature": 0.7}
    first = [{"type": "generator", **component} for _ in range(3)]
    rest = [[{"type": "fuser", **component}] for _ in range(layers - 1)]
    return {"name": "deep", "layers": [first, *rest]}


def _calls(config: dict[str, Any]) -> int:
    """How many Python functions run while ``config`` is imported."""
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        import_config(config)
    finally:
        sys.setprofile(None)
    return count


def test_import_is_linear_in_the_layers() -> None:
    small, large = _config(1000), _config(4000)
    per_layer_small = _calls(small) / 1000
    per_layer_large = _calls(large) / 4000
    assert per_layer_large / per_layer_small < 1.5


def test_a_deep_config_keeps_every_layer() -> None:
    text = import_config(_config(4000)).text
    assert "l4000_fuser1" in text and text.count("fuse(") == 3999
