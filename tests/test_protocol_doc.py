"""docs/protocol.md names every field, fleet key and command the twin actually has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import load_scenario

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
# Per-binding mirror fields are documented as patterns: mirror_measured_<quantity>.
MIRROR_PATTERN = re.compile(r"^mirror_(measured|predicted|residual)_")


@pytest.mark.parametrize("scenario", ["default", "assets/testbeds/flatsat_mirror.toml",
                                      "suncatcher"])
def test_everything_on_the_wire_is_documented(scenario: str) -> None:
    loaded = load_scenario(scenario)
    engine = Engine(loaded, SimClock(loaded.epoch_utc, 1.0, 1.0))
    fields = [f.spec.name for f in engine.fields if not MIRROR_PATTERN.match(f.spec.name)]
    names = fields + list(engine.header()["fleet"]) + list(engine.commands())
    undocumented = [name for name in names if f"`{name}`" not in DOC]
    assert not undocumented, f"not in docs/protocol.md: {undocumented}"
