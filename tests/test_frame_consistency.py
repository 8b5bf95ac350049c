"""A frame agrees with itself (issue 17 item 5): busy accelerators, utilization, power and
FLOP/s describe the same step (docs/protocol.md, "Instant or interval").

Property-based: random workloads (arrival rate, backlog, job sizes through the seed),
random step sizes (cut into sub-steps or not) and random upsets; in every frame of the
run, on every node:

- utilization (the step's mean occupancy) is at most the accelerators that held a job in
  the step, over the working ones, and is zero exactly where none did;
- delivered FLOP/s are at most the mean busy accelerators times one's peak;
- with no accelerator busy the payload draws its idle level: the host and every working
  accelerator asleep;
- the payload's power lies between that idle level and the most the step's mean
  occupancy can draw (each busy accelerator at full power, leaking at the hottest junction
  the frame shows, each other one asleep).

Before the fix, frames showed 0 busy at 6 kW (a job finished within the step, counted at
its end), and FLOP/s over the mean occupancy (new jobs counted busy before they ran).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.computeutil import STATION
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.compute.params import ComputeParams
from twin.models.compute.power_clock import leakage_extra_w
from twin.scenario import parse_scenario

RELATIVE = 1e-5  # float32 fields
POWER_SLACK_W = 0.5  # float32 rounding of a ~10 kW field, and a margin

SCENARIO = """
[scenario]
name = "busy"
epoch = "2026-03-20T12:00:00Z"
seed = {seed}

[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 2
sats_per_plane = 2
phasing = 0

[workload]
arrivals_per_node_h = {rate}
initial_backlog_h = {backlog}
policy = "{policy}"

[radiation]
see_scale = {seu}
""" + STATION


def check_frame(engine: Engine, params: ComputeParams, step: int,
                hottest_before_k: float) -> None:
    """One frame against itself; ``hottest_before_k``: the hottest junction as the step began
    (the leakage of a sub-step follows the junction as it began, anywhere between the two
    frames' temperatures)."""
    compute = engine.compute_model
    n_ok = np.asarray(engine.faults.outputs.accelerators_ok
                      if engine.faults.outputs.accelerators_ok is not None
                      else np.full(engine.n_sats, params.accelerators_per_node), dtype=float)
    busy = compute.busy.array.astype(float)
    util = compute.utilization.array.astype(float)
    power = compute.power.array.astype(float)
    flop_s = compute.delivered.array.astype(float)
    where = f"step {step}: busy {busy}, utilization {util}, power {power}, FLOP/s {flop_s}"
    mean_busy = util * n_ok
    assert (mean_busy <= busy * (1 + RELATIVE) + 1e-6).all(), where
    assert ((util > 0) == (busy > 0)).all(), where
    assert (flop_s <= mean_busy * params.peak_flop_s * (1 + RELATIVE) + 1.0).all(), where
    idle_w = params.host_power_w + n_ok * params.sleep_power_w
    none_busy = busy == 0
    assert np.allclose(power[none_busy], idle_w[none_busy], rtol=RELATIVE,
                       atol=POWER_SLACK_W), where
    # A junction may peak between frames (a job ends mid-step): 2 K of margin on the
    # hotter end, worth a few watts of leakage per node, nothing like the defects this
    # test is for (0 busy at full power, work at 5x peak).
    hottest_k = max(float(engine.thermal.temp_junction.array.max()), hottest_before_k) + 2.0
    busy_w = params.full_power_w + max(float(leakage_extra_w(params, np.array([hottest_k]))[0]),
                                       0.0)
    most_w = params.host_power_w + mean_busy * busy_w + (n_ok - mean_busy) * params.sleep_power_w
    assert (power >= idle_w * (1 - RELATIVE) - POWER_SLACK_W).all(), where
    assert (power <= most_w * (1 + RELATIVE) + POWER_SLACK_W).all(), where


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rate=st.floats(2.0, 12.0), backlog=st.floats(0.5, 3.0),
       policy=st.sampled_from(["first_fit", "sun_aware"]),
       seu=st.sampled_from([0.0, 200.0]),
       dt_s=st.sampled_from([1.0, 6.0, 45.0, 120.0, 600.0]))
def test_every_frame_of_a_busy_run_agrees_with_itself(seed: int, rate: float, backlog: float,
                                                       policy: str, seu: float,
                                                       dt_s: float) -> None:
    scenario = parse_scenario(SCENARIO.format(seed=seed, rate=rate, backlog=backlog,
                                              policy=policy, seu=seu))
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=dt_s, fast=True))
    params = engine.compute_model.params  # the model's own, as the scenario set it
    # Three hours at the longer steps (jobs start and finish within steps), two minutes at
    # the shorter ones.
    steps = int(3 * 3600 / dt_s) if dt_s >= 45.0 else 120
    for step in range(steps):
        hottest_before_k = float(engine.thermal.temp_junction.array.max())
        engine.step()
        check_frame(engine, params, step, hottest_before_k)
    # The run was busy: its backlog started on the nodes.
    assert engine.compute_model.totals["jobs_started"] > 0


def test_a_job_finishing_mid_step_is_charged_for_its_part_only() -> None:
    """One job of a known size on one node at 60 s steps: the step it finishes in draws
    (and delivers) for the seconds it ran, by hand."""
    from tests.computeutil import DAWN_DUSK, QUIET, SMALL_HOST, command, engine

    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST)
    compute = eng.compute_model
    p = compute.params
    # 8 accelerators x 90 s of work at full clock: 1.5 steps once it runs.
    command(eng, "submit_job", kind="training", size_accel_h=8 * 90.0 / 3600.0,
            accelerators=8)
    eng.step()  # placed as this step ends
    assert compute.busy.array[0] == 0  # it did not run in this step
    eng.step()  # a whole step of work: 60 of its 90 s
    assert compute.busy.array[0] == 8 and compute.utilization.array[0] == 1.0
    junction_k = eng.thermal.temp_junction.array[:1].astype(float)
    eng.step()  # 30 s of work, then 30 s asleep
    assert compute.totals["jobs_done"] == 1
    assert compute.busy.array[0] == 8  # took part in the step
    assert float(compute.utilization.array[0]) == np.float32(0.5)
    assert float(compute.delivered.array[0]) == np.float32(0.5 * 8 * p.peak_flop_s)
    sleep_w = p.host_power_w + 8 * p.sleep_power_w
    # Half the step at full clock, leaking at the junction the step started from, half
    # asleep: host + 8 (P_full + leak) / 2 + 8 P_sleep / 2.
    leak_w = float(leakage_extra_w(p, junction_k)[0])
    by_hand_w = p.host_power_w + 4 * (p.full_power_w + leak_w) + 4 * p.sleep_power_w
    assert float(compute.power.array[0]) == pytest.approx(by_hand_w, rel=RELATIVE)
    eng.step()
    assert compute.busy.array[0] == 0 and compute.utilization.array[0] == 0.0
    assert float(compute.power.array[0]) == np.float32(sleep_w)
