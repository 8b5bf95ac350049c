"""Models at the edges of what a scenario allows: bounded work, finite state, clear refusals.

Found by the scenario fuzz (tests/test_scenario_fuzz.py): valid but extreme parameters used
to stall a step for minutes, hold gigabytes, or publish NaN.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.compute.radiation import MAX_UPSETS_PER_STEP, RadiationParams, environment
from twin.models.compute.workload import WorkloadParams, draw_arrivals
from twin.scenario import ScenarioError, parse_scenario

DEFAULT_TOML = (Path(__file__).resolve().parent.parent / "assets" / "scenarios"
                / "default.toml").read_text()


def test_an_extreme_radiation_environment_saturates_instead_of_stalling() -> None:
    scenario = parse_scenario(DEFAULT_TOML + """
[radiation]
see_scale = 1e9
saa_dose_factor = 1e6
polar_factor = 1e4
saa_scale_height_km = 0.001
""")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=600.0))
    started = time.perf_counter()
    engine.step()
    assert time.perf_counter() - started < 10.0
    saturated = [e for e in engine.events.drain() if e["kind"] == "upsets_saturated"]
    assert saturated and saturated[0]["applied"] == MAX_UPSETS_PER_STEP
    assert np.isfinite(engine.compute_model.radiation.seu_rate.array).all()


def test_the_radiation_environment_is_finite_far_from_leo() -> None:
    params = RadiationParams()
    seu, dose, _ = environment(params, np.array([-30.0, 0.0]), np.array([-45.0, 0.0]),
                               np.array([1e20, np.nan]))
    assert np.isfinite(seu).all() and np.isfinite(dose).all()


def test_array_absorptivity_below_cell_efficiency_is_refused() -> None:
    with pytest.raises(ScenarioError, match="array_absorptivity"):
        scenario = parse_scenario(DEFAULT_TOML.replace(
            "\n[power]\n", "\n[power]\narray_absorptivity = 0.2\ncell_efficiency_frac = 0.3\n", 1))
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0))


def test_arrivals_past_the_queue_are_dropped_before_they_are_built() -> None:
    params = WorkloadParams(arrivals_per_node_h=100.0)
    jobs, dropped = draw_arrivals(np.random.default_rng(1), params, 4428, 3600.0 * 1000, 8,
                                  room=10)
    assert len(jobs) == 10 and dropped > 400_000_000
