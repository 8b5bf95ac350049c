"""The default scenario's power and thermal design point holds through its worst eclipses.

A full simulated year of ``default`` takes minutes (``bench/design_year.py``, recorded in
docs/models.md, "Design point and sizing"); here the twin's own geometry finds the deepest
eclipse of each orbit family over that year, and the full twin runs two days around it at
nominal load (the scenario's own workload, 60 s steps): no state-of-charge alarm, no
battery temperature warning (nor any other limit event, power cap or thermal throttle),
and the depth of discharge within the design's 35 %.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.registry import MODELS
from twin.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
# Loaded from its file: bench/ on sys.path would shadow other modules (test_bench_flags.py).
_spec = importlib.util.spec_from_file_location("design_year", ROOT / "bench" / "design_year.py")
design_year = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = design_year  # its dataclasses look their module up by name
_spec.loader.exec_module(design_year)

DESIGN_DEPTH_OF_DISCHARGE = 0.35
WINDOW = timedelta(days=2)
STEP_S = 60.0


def lowest_beta_day(scenario: Scenario, family: str) -> tuple[datetime, float]:
    """The day of the year from the epoch when ``family``'s smallest |beta| is lowest (its
    deepest eclipse), from the orbit model alone sampled every six hours."""
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=STEP_S, fast=True)
    orbit_only = Engine(scenario, clock, models=MODELS[:1])
    members = np.array([s.group == family for s in scenario.satellites])
    samples = np.arange(1, 4 * 365 + 1) * 6 * 3600.0
    lowest = np.empty(len(samples))
    for i, elapsed_s in enumerate(samples):
        clock.elapsed_s = elapsed_s  # orbit is stateless in time: jump straight there
        orbit_only.compute(STEP_S)
        lowest[i] = np.abs(orbit_only.quantity("beta_deg")[members]).min()
    worst = int(lowest.argmin())
    return scenario.epoch_utc + timedelta(seconds=float(samples[worst])), float(lowest[worst])


# Per family: the |beta| its deepest eclipse has below, that eclipse's length in minutes,
# and the least depth of discharge that shows the window did hold a loaded eclipse
# (by hand, docs/models.md: 33 % and 18 % at full load; nominal load is a little less).
@pytest.mark.parametrize(("family", "beta_below_deg", "eclipse_min", "least_depth"), [
    ("mid-53", 1.0, (35.0, 36.5), 0.25),     # beta 0 at 550 km: 35.6 min of 95.6
    ("dawn-dusk", 60.0, (19.0, 20.5), 0.12),  # late June at 650 km: beta 58.6 deg, 19.7 min
])
def test_default_worst_eclipse_season_keeps_the_battery_in_its_band(
        family: str, beta_below_deg: float, eclipse_min: tuple[float, float],
        least_depth: float) -> None:
    scenario = load_scenario("default")
    worst_day, beta_deg = lowest_beta_day(scenario, family)
    assert beta_deg < beta_below_deg
    # A window around the deepest eclipse; the satellites stay those of the scenario's
    # epoch, propagated there.
    scenario_start = scenario.epoch_utc
    record = design_year.survey(scenario, round(WINDOW.total_seconds() / STEP_S), STEP_S,
                                start_utc=worst_day - WINDOW / 2)
    assert scenario.epoch_utc == scenario_start
    rec = record.families[family]
    depth = record.depth_of_discharge(family)
    summary = (f"{family} from {worst_day - WINDOW / 2:%Y-%m-%d %H:%M}: |beta| {beta_deg:.2f} deg,"
               f" depth of discharge {depth:.3f}\n{record.report()}")
    print(summary)
    assert eclipse_min[0] <= rec.longest_eclipse_s / 60.0 <= eclipse_min[1], summary
    assert least_depth < depth <= DESIGN_DEPTH_OF_DISCHARGE, summary
    battery = {k: v for k, v in record.events.items()
               if k.startswith(("limit soc_frac", "limit temp_battery_k"))}
    assert not battery, summary
    # Nor any other limit, power cap or thermal throttle: the design covers the payload.
    assert not record.events, summary
    # Inside the battery's warnings (5 and 40 C), with 3 K to spare at the top.
    assert rec.battery_min_k > 278.15 and rec.battery_max_k < 313.15 - 3.0, summary


def test_sun_follow_trades_battery_for_capped_compute_in_eclipse() -> None:
    """The undersized battery of ``sun_follow`` reaches the reserve on deep 53 deg eclipses:
    compute is capped and the SoC alarm fires, by design (docs/scenarios.md)."""
    scenario = load_scenario("sun_follow")
    record = design_year.survey(scenario, 6 * 60, STEP_S)
    assert record.events.get("power_cap", 0) > 0, record.report()
    assert record.events.get("limit soc_frac alarm", 0) > 0, record.report()
    assert record.families["mid-53"].soc_min > 0.05, record.report()  # never flat


def test_the_built_in_defaults_are_the_default_scenarios_design_point() -> None:
    """One source of truth: every [thermal] and [power] value default.toml sets equals the
    built-in default (so a scenario without those tables gets the same design point), and
    starlink.toml needs no table of its own."""
    from twin.models.power import PowerParams
    from twin.models.thermal import ThermalParams
    from twin.scenario import parse_section

    default = load_scenario("default")
    for table, params in (("thermal", ThermalParams), ("power", PowerParams)):
        assert default.sections[table], table  # the design point is written out there
        assert parse_section(params, default, table) == params(), table
        assert table not in load_scenario("starlink").sections
