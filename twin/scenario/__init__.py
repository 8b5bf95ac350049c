"""Scenario files: loading, validation and their parameter docs.

The public surface is re-exported here (``from twin.scenario import load_scenario``). The
package's modules: ``loader`` (the whole file and what it becomes), ``sections`` (a table to
a validated dataclass, ``parse_section``), ``tle`` (TLE catalogs), ``epoch`` (the scenario
epoch), ``files`` (bounded reads), ``errors`` (``ScenarioError``, ``InvalidField``) and
``paramdoc`` (the parameter reference in docs/scenarios.md).
"""

from twin.scenario.errors import InvalidField, ScenarioError
from twin.scenario.loader import (
    ASSETS_DIR,
    MAX_SATELLITES,
    SCENARIOS_DIR,
    ClockSettings,
    GroundStation,
    Scenario,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
    parse_scenario_document,
)
from twin.scenario.sections import parse_section
from twin.scenario.tle import MAX_TLE_AGE_DAYS

__all__ = [
    "ASSETS_DIR", "MAX_SATELLITES", "MAX_TLE_AGE_DAYS", "SCENARIOS_DIR", "ClockSettings",
    "GroundStation", "InvalidField", "Scenario", "ScenarioError", "SecuritySettings",
    "bundled_scenarios", "load_scenario", "parse_scenario", "parse_scenario_document",
    "parse_section",
]
