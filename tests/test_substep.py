"""Step-size independence (issue 17 item 4): the warp changes how fast a run goes, not its
results.

The reference is the twin at 1 s steps; 60 s and 600 s steps (the control loop then
sub-stepped at ``[clock] control_period_s``, docs/models.md, "Step-size independence") must
agree with it within the issue's tolerances: 0.5 K on every thermal node and 0.005 in
state of charge, over five orbits of the "compute follows the Sun" scenario with its power
cap engaging, with its own battery and with 12 kWh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import MAX_SUBSTEPS, Engine, substep_count
from twin.scenario import load_scenario, parse_scenario

SUN_FOLLOW = Path(__file__).resolve().parent.parent / "assets" / "scenarios" / "sun_follow.toml"
TEMP_TOLERANCE_K = 0.5
SOC_TOLERANCE = 0.005
FIVE_ORBITS_S = 8 * 3600.0  # five orbits of the 650 km plane (97.7 min) are 8.1 h: 8 h
SAMPLE_S = 600.0  # compared every 600 s, a time every step size lands on


def small_sun_follow(battery_wh: float | None) -> str:
    """``sun_follow`` with one node per plane (four nodes: three 53° planes and the
    dawn-dusk one), no random arrivals or upsets, and first-fit placement, so that every
    step size runs the same jobs."""
    text = SUN_FOLLOW.read_text()
    for shell in ("planes = 3\nsats_per_plane = 8", "planes = 1\nsats_per_plane = 16"):
        assert shell in text, f"sun_follow.toml changed: {shell!r} not found"
        text = text.replace(shell, shell.split("\n")[0] + "\nsats_per_plane = 1")
    if battery_wh is not None:
        text = text.replace("battery_capacity_wh = 8000.0", f"battery_capacity_wh = {battery_wh}")
        assert f"battery_capacity_wh = {battery_wh}" in text
    return text + """
[workload]
arrivals_per_node_h = 0.0
policy = "first_fit"
[radiation]
see_scale = 0.0
"""


def run(text: str, dt_s: float) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], int, int]:
    """Temperatures (4, n) and state of charge (n,) every ``SAMPLE_S``, by time (s); the
    power caps engaged; the control loop's sub-steps in a step.

    Every run submits a whole-node job per node and takes one 1 s step (placement), then
    steps ``dt_s`` (the warp changed mid-run, as an operator does).
    """
    scenario = parse_scenario(text)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))
    for _ in range(engine.n_sats):
        engine.run_command({"cmd": "submit_job", "kind": "training", "size_accel_h": 1e5,
                            "accelerators": 8})
    engine.step()
    engine.clock.set_warp(dt_s)
    samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    caps = 0
    while engine.clock.elapsed_s < 1.0 + FIVE_ORBITS_S:  # from the 1 s step on
        engine.step()
        caps += sum(e["kind"] == "power_cap" for e in engine.events.drain())
        since_s = round(engine.clock.elapsed_s - 1.0, 6)
        if since_s % SAMPLE_S == 0.0:
            samples[int(since_s)] = (engine.thermal.temps_k.copy(),
                                     engine.power.soc_state.copy())
    return samples, caps, engine.header()["substeps"]


# About 29,000 one-second steps: 20-40 s on a quiet machine, past the suite's 120 s on one
# shared with other sessions (it timed out twice at load average 30).
@pytest.mark.timeout(400)
@pytest.mark.parametrize("battery_wh", [None, 12000.0], ids=["8kWh", "12kWh"])
def test_long_steps_agree_with_one_second_steps_on_sun_follow(battery_wh: float | None) -> None:
    text = small_sun_follow(battery_wh)
    reference, caps, substeps = run(text, 1.0)
    assert substeps == 1
    # The scenario's own battery reaches the reserve on deep eclipses: the cap engages (12 kWh
    # carries the payload through them, and nothing caps).
    assert (caps > 0) == (battery_wh is None), caps
    for dt_s in (60.0, 600.0):
        samples, long_caps, substeps = run(text, dt_s)
        assert substeps == substep_count(dt_s, 6.0) == dt_s / 6.0
        assert long_caps == caps
        assert samples.keys() == reference.keys()
        temp_k = max(float(np.abs(samples[t][0] - reference[t][0]).max()) for t in samples)
        soc = max(float(np.abs(samples[t][1] - reference[t][1]).max()) for t in samples)
        assert temp_k < TEMP_TOLERANCE_K, f"{dt_s} s steps: {temp_k:.3f} K from 1 s steps"
        assert soc < SOC_TOLERANCE, f"{dt_s} s steps: SoC {soc:.4f} from 1 s steps"


def test_a_large_step_does_not_change_the_default_scenario() -> None:
    """The default scenario (its own workload, one seed) at 600 s steps against its normal
    6 s steps, over two orbits, at the issue's tolerances on the fleet's temperatures and
    state of charge. The seeded arrivals are drawn per step, so the two runs may place
    different jobs: arrivals are off, and the epoch's backlog (drawn once) is the load."""
    text = Path(load_scenario("default").source).read_text() + """
[workload]
arrivals_per_node_h = 0.0
initial_backlog_h = 0.0
[radiation]
see_scale = 0.0
"""
    def sampled(dt_s: float) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        scenario = parse_scenario(text)
        engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=6.0,
                                           fast=True))
        for node in range(0, engine.n_sats, 2):
            engine.run_command({"cmd": "submit_job", "kind": "training", "size_accel_h": 1e5,
                                "accelerators": 8, "priority": node})
        engine.step()
        engine.clock.set_warp(dt_s)
        temps, socs = [], []
        while engine.clock.elapsed_s < 6.0 + 19 * 600.0:  # two orbits from the 6 s step
            engine.step()
            if round(engine.clock.elapsed_s - 6.0, 6) % 600.0 == 0.0:
                temps.append(engine.thermal.temps_k.copy())
                socs.append(engine.power.soc_state.copy())
        return temps, socs, engine.header()["substeps"]

    temps_6, socs_6, substeps_6 = sampled(6.0)
    temps_600, socs_600, substeps_600 = sampled(600.0)
    assert (substeps_6, substeps_600) == (1, 100)
    assert len(temps_6) == len(temps_600) == 19
    temp_k = max(float(np.abs(a - b).max()) for a, b in zip(temps_6, temps_600, strict=True))
    soc = max(float(np.abs(a - b).max()) for a, b in zip(socs_6, socs_600, strict=True))
    assert temp_k < TEMP_TOLERANCE_K, f"{temp_k:.3f} K"
    assert soc < SOC_TOLERANCE, f"{soc:.4f}"


def test_the_engine_says_how_many_sub_steps_it_ran() -> None:
    """``substeps`` in the state header, ``control_period_s`` in meta's clock."""
    scenario = parse_scenario(small_sun_follow(None).replace(
        "warp = 60.0", "control_period_s = 25.0\nwarp = 60.0"))
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    assert engine.meta()["clock"]["control_period_s"] == 25.0
    assert engine.header()["substeps"] == 1  # the epoch
    engine.step()
    assert engine.header()["substeps"] == 3  # 60 s in three 20 s sub-steps
    engine.clock.set_warp(25.0)
    engine.step()
    assert engine.header()["substeps"] == 1
    assert [substep_count(dt, 6.0) for dt in (0.0, 0.1, 6.0, 6.5, 60.0, 600.0)] == [
        1, 1, 1, 2, 10, 100]
    assert substep_count(600.0, 0.1) == MAX_SUBSTEPS == 100  # a step's work stays bounded


def test_the_sunlight_of_each_sub_step_matches_sgp4_at_the_sub_steps() -> None:
    """The environment over the parts of a 600 s step (orbit rotated back along a circle,
    the ellipsoid shadow at the boundaries: twin/models/step_parts.py) against the
    independent reference of SGP4 and the environment run at every second, over ten steps
    (more than an orbit, with every node's shadow edges). Each 600 s step's sunlit seconds
    agree within 1 s; each 6 s part within 2 s, since a part cut through the penumbra
    (8-10 s wide here) holds its shape only approximately."""
    text = small_sun_follow(None)
    scenario = parse_scenario(text)
    long = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=600.0, fast=True))
    fine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))
    environment = long.models["environment"]
    edges = 0
    for _ in range(10):
        long.step()
        parts = environment.outputs_parts(long._last_context, 100)
        step_s = np.zeros(len(scenario.satellites))
        reference_step_s = np.zeros_like(step_s)
        for part in parts:
            reference_s = np.zeros_like(step_s)
            for _ in range(6):
                fine.step()
                reference_s += fine.models["environment"].outputs.sunlit_step.mean
            sunlit_s = 6.0 * part.sunlit_step.mean
            assert np.abs(sunlit_s - reference_s).max() < 2.0
            step_s += sunlit_s
            reference_step_s += reference_s
            edges += int(np.count_nonzero((reference_s > 0.0) & (reference_s < 6.0)))
        assert np.abs(step_s - reference_step_s).max() < 1.0
    assert edges >= 8  # the 53° nodes' shadow edges were in the run


def test_a_bad_control_period_is_refused_naming_the_key() -> None:
    from twin.scenario import ScenarioError

    for bad, message in (("0.0", "out of range"), ("1e9", "out of range"),
                         ('"fast"', "number")):
        text = small_sun_follow(None).replace("warp = 60.0",
                                              f"control_period_s = {bad}\nwarp = 60.0")
        with pytest.raises(ScenarioError, match=r"clock\.control_period_s") as caught:
            parse_scenario(text)
        assert message in str(caught.value)


def test_the_control_loop_must_be_one_block_of_models() -> None:
    import dataclasses

    from twin.core.registry import RegistryError
    from twin.models.registry import MODELS

    split = tuple(dataclasses.replace(entry, substep=entry.name in ("compute", "limits"))
                  for entry in MODELS)
    scenario = parse_scenario(small_sun_follow(None))
    with pytest.raises(RegistryError, match=r"compute, limits.*consecutive"):
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0), models=split)
