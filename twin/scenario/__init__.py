"""Scenario files: loading, validation and their parameter docs.

The public surface is re-exported here (``from twin.scenario import load_scenario``); the
loader's internals stay in ``twin.scenario.loader``.
"""

from twin.scenario.loader import (
    ASSETS_DIR,
    MAX_SATELLITES,
    MAX_TLE_AGE_DAYS,
    SCENARIOS_DIR,
    ClockSettings,
    GroundStation,
    InvalidField,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
    parse_section,
)

__all__ = [
    "ASSETS_DIR", "MAX_SATELLITES", "MAX_TLE_AGE_DAYS", "SCENARIOS_DIR", "ClockSettings",
    "GroundStation", "InvalidField", "Scenario", "ScenarioError", "bundled_scenarios",
    "load_scenario", "parse_scenario", "parse_section",
]
