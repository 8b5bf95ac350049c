"""Die (junction) and HBM temperatures, throttling on them, leakage, and the host's power.

Every expected value is worked out here from the parameters (docs/models.md, "Junction,
HBM and leakage"), not by calling the model's functions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from computeutil import (
    DAWN_DUSK,
    QUIET,
    SMALL_AIRFRAME,
    SMALL_AIRFRAME_POWER,
    SMALL_AIRFRAME_THERMAL,
    SMALL_HOST,
    command,
    engine,
)

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.subsystem import EventLog, StepContext
from twin.models.compute import ComputeModel, ComputeParams
from twin.models.thermal import ThermalParams
from twin.scenario import ScenarioError, load_scenario, parse_scenario

TENTH_KELVIN = 0.1  # junction and HBM against the resistance network, K
RELATIVE_POWER = 1e-6  # node power against the leakage formula (float32 field)
POWER_LEDGER_RTOL = 1e-9  # electrical ledger, as tests/test_power.py holds it
# Thermal ledger's residual over the heat through it: the one-Newton-step linearization
# of T⁴ leaves it (tests/test_thermal.py holds an orbit of default to the same 1e-3).
THERMAL_LEDGER_RELATIVE = 1e-3

# SMALL_HOST, the old 400 W host: the design point's full-load hot case runs the junction
# up to, not past, its limit, so nothing throttles in the runs that use it.
LONG_JOB = {"kind": "training", "size_accel_h": 800.0, "accelerators": 8}


def leakage_w(c: ComputeParams, junction_k: float) -> float:
    """One powered accelerator's leakage above its datasheet power at ``junction_k``."""
    return c.leakage_frac * c.full_power_w * (
        math.exp(c.leakage_temp_coeff_per_k * (junction_k - c.leakage_ref_temp_k)) - 1.0)


def holding_clock(c: ComputeParams, t: ThermalParams, plate_k: float,
                  junction_k: float) -> float:
    """The clock at which a computing accelerator's junction and HBM stand at their limits
    over ``plate_k``: P_idle + leak + (P_full - P_idle) f^k = the lower of
    (T_limit - T_plate) / R for the junction and the HBM; 0 below ``min_clock_frac``."""
    allowed_w = min((c.throttle_temp_k - plate_k) / t.junction_resistance_k_w,
                    (c.hbm_throttle_temp_k - plate_k)
                    / (t.hbm_resistance_k_w * t.hbm_power_frac))
    ratio = (allowed_w - c.idle_power_w - leakage_w(c, junction_k)) / (
        c.full_power_w - c.idle_power_w)
    clock = min(max(ratio, 0.0) ** (1.0 / c.dvfs_exponent), 1.0)
    return clock if clock >= c.min_clock_frac else 0.0


def busy_accelerator_w(c: ComputeParams, junction_k: float) -> float:
    """One accelerator busy at full clock at ``junction_k``: idle + (full - idle) + the
    leakage above (or below) its reference, L_ref (exp(b (T - T_ref)) - 1)."""
    leak_ref_w = c.leakage_frac * c.full_power_w
    extra = leak_ref_w * (math.exp(c.leakage_temp_coeff_per_k
                                   * (junction_k - c.leakage_ref_temp_k)) - 1.0)
    return c.idle_power_w + (c.full_power_w - c.idle_power_w) + extra


def test_junction_and_hbm_sit_over_the_plate_by_the_resistance_network() -> None:
    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST + SMALL_AIRFRAME)
    command(eng, "submit_job", **LONG_JOB)
    c, t = ComputeParams(), ThermalParams()  # the scenario sets the host alone
    thermal, compute = eng.thermal, eng.compute_model
    for _ in range(3):
        eng.step()
    for _ in range(60):  # warming from 20 °C towards the hot case: a range of junctions
        junction_before = float(thermal.temp_junction.array[0])
        eng.step()
        assert compute.busy.array[0] == 8 and not compute.thermal_on[0]
        assert np.isinf(compute.cap.array[0])
        per_accelerator_w = busy_accelerator_w(c, junction_before)
        plate_k = float(thermal.temp_compute.array[0])
        assert float(thermal.temp_junction.array[0]) == pytest.approx(
            plate_k + t.junction_resistance_k_w * per_accelerator_w, abs=TENTH_KELVIN)
        assert float(thermal.temp_hbm.array[0]) == pytest.approx(
            plate_k + t.hbm_resistance_k_w * t.hbm_power_frac * per_accelerator_w,
            abs=TENTH_KELVIN)
        assert float(compute.power.array[0]) == pytest.approx(
            8 * 50.0 + 8 * per_accelerator_w, rel=RELATIVE_POWER)
    # Warmed well past the start: the die runs 24-26 K over the plate.
    assert float(thermal.temp_junction.array[0] - thermal.temp_compute.array[0]) > 24.0


def test_the_hot_case_throttles_at_the_junction_limit_with_the_plate_far_below_it() -> None:
    """docs/models.md, "Hot case": with the DGX-class host a fully busy dawn-dusk node in
    full sun heats until its junction would pass 85 °C at full clock, when its plate passes
    85 - R_j P(85 °C) = 59.5 °C, 25.5 K below the limit the plate used to be held to; from
    then on the throttle holds the junction at its limit with the clock worked out by hand."""
    eng = engine(DAWN_DUSK + QUIET + SMALL_AIRFRAME)  # the small radiator it was worked on
    command(eng, "submit_job", **LONG_JOB)
    c, t = ComputeParams(), ThermalParams()
    limit_k = c.throttle_temp_k
    r_j = t.junction_resistance_k_w
    plate_at_limit_k = limit_k - r_j * busy_accelerator_w(c, limit_k)
    assert plate_at_limit_k == pytest.approx(273.15 + 59.5, abs=0.05)  # the documented value
    thermal, compute = eng.thermal, eng.compute_model
    junction_before = plate_before = plate_earlier = 0.0
    heating_steps = 0
    for _ in range(300):
        heating_steps += 1
        plate_earlier = plate_before
        junction_before = float(thermal.temp_junction.array[0])
        plate_before = float(thermal.temp_compute.array[0])
        eng.step()
        # The die at full clock over last step's plate, leaking at last step's junction.
        full_clock_junction_k = plate_before + r_j * busy_accelerator_w(c, junction_before)
        assert bool(compute.thermal_on[0]) is (full_clock_junction_k > limit_k)
        if compute.thermal_on[0]:
            break
    else:
        pytest.fail("the hot case never throttled")
    assert heating_steps > 6  # it heated from a cool start to get there
    events = [e for e in eng.events.drain() if e["kind"] == "thermal_throttle"]
    # At the limit: the die reached there at last step's leakage, a few watts less.
    assert junction_before == pytest.approx(limit_k, abs=0.5)
    # The plate passed the hand-worked value between the last two steps.
    assert plate_earlier < plate_at_limit_k + TENTH_KELVIN
    assert plate_before > plate_at_limit_k - TENTH_KELVIN
    assert plate_before < limit_k - 20.0  # the plate alone would not have throttled
    assert compute.clock.array[0] == pytest.approx(
        holding_clock(c, t, plate_before, junction_before), abs=1e-6)
    assert compute.clock.array[0] < 1.0
    assert events and "junction" in events[0]["message"]
    # From then on: held while the full-clock junction stays within the hysteresis of the
    # limit, at the clock that puts the die at its limit over last step's plate; the die
    # passes its limit by no more than a step's plate drift.
    junctions, clocks = [], []
    for _ in range(120):
        was_on = bool(compute.thermal_on[0])
        junction_before = float(thermal.temp_junction.array[0])
        plate_before = float(thermal.temp_compute.array[0])
        eng.step()
        full_clock_junction_k = plate_before + r_j * busy_accelerator_w(c, junction_before)
        cut = full_clock_junction_k > limit_k or (
            was_on and full_clock_junction_k >= limit_k - c.throttle_hysteresis_k)
        assert bool(compute.thermal_on[0]) is cut
        expected = holding_clock(c, t, plate_before, junction_before) if cut else 1.0
        assert float(compute.clock.array[0]) == pytest.approx(expected, abs=1e-6)
        junction_now = float(thermal.temp_junction.array[0])
        if cut and 0.0 < expected < 1.0:
            # The die draws exactly what puts it at its limit over last step's plate: it
            # stands above the limit by what the plate moved in the step.
            plate_now = float(thermal.temp_compute.array[0])
            assert junction_now == pytest.approx(limit_k + plate_now - plate_before,
                                                 abs=0.01)
        junctions.append(junction_now)
        clocks.append(expected)
    assert max(junctions) < limit_k + 2.0
    assert max(junctions[20:]) < limit_k + TENTH_KELVIN  # settled: the plate hardly moves
    assert min(junctions[20:]) > limit_k - 0.5  # held at the limit, not far below it
    assert 0.35 < min(clocks) < max(clocks[20:]) < 1.0  # trimmed, not cut to a fixed clock


def test_a_hot_fleet_starts_with_its_dies_held_at_their_limits() -> None:
    """The starting state is the steady state of the working loads with the throttle
    holding the dies (docs/models.md, "Starting state"): default's fleet and DGX-class host
    on the built-in airframe (sized for a 400 W host: default's own design tables left
    out), where busy plates settle far past 59.5 °C, where full clock would put the junction
    past 85 °C, so they start held at it, not at the 129 °C a full-clock steady state gives."""
    designed = load_scenario("default")
    scenario = dataclasses.replace(designed, sections={
        **{name: table for name, table in designed.sections.items()
           if name not in ("thermal", "power")},
        "thermal": dict(SMALL_AIRFRAME_THERMAL), "power": dict(SMALL_AIRFRAME_POWER)})
    eng = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    limit_k = ComputeParams().throttle_temp_k
    for _ in range(3):
        eng.step()
        assert not eng.thermal.settle_unconverged.size
        assert float(eng.thermal.temp_junction.array.max()) < limit_k + TENTH_KELVIN
    hot = eng.thermal.temp_compute.array > limit_k - 25.5 + 1.0  # past the hand-worked plate
    assert np.count_nonzero(hot) > 5
    assert (eng.compute_model.throttle.array[hot] == 1).all()
    assert not [e for e in eng.events.drain() if e["kind"] == "thermal_settle"]


def step_alone(model: ComputeModel, t: float, **quantities: object) -> None:
    rng = np.random.default_rng(0)
    model.step(StepContext.with_quantities(t, 60.0, EventLog(t_utc=t), rng, **quantities))


@pytest.mark.parametrize("junction_c", [20.0, 40.0, 70.0, 80.0])
def test_leakage_raises_the_node_power_with_the_junction_temperature(junction_c: float
                                                                      ) -> None:
    model = ComputeModel(parse_scenario(DAWN_DUSK + QUIET))
    model.commands()["submit_job"](dict(LONG_JOB))
    c = model.params
    t = 1.0e9
    step_alone(model, t)  # places the job
    junction_k = 273.15 + junction_c
    step_alone(model, t + 60.0, temp_junction_k=np.array([junction_k]))
    # P = host + 8 (full + L_ref (exp(b (T - T_ref)) - 1)), L_ref = 0.10 x 700 W = 70 W,
    # b = 0.023 /K, T_ref = 70 °C: at 80 °C each accelerator draws 70 (e^0.23 - 1) = 18.1 W
    # more, at 20 °C 70 (e^-1.15 - 1) = 47.8 W less.
    per_accelerator_w = c.full_power_w + 70.0 * (math.exp(0.023 * (junction_c - 70.0)) - 1.0)
    expected_w = 8 * 575.0 + 8 * per_accelerator_w
    assert float(model.power.array[0]) == pytest.approx(expected_w, rel=RELATIVE_POWER)
    assert float(model.outputs.accelerator_power_w[0]) == pytest.approx(per_accelerator_w,
                                                                         rel=RELATIVE_POWER)
    assert not model.thermal_on[0]


def test_leakage_is_monotonic_and_the_hbm_limit_throttles_too() -> None:
    model = ComputeModel(parse_scenario(DAWN_DUSK + QUIET))
    model.commands()["submit_job"](dict(LONG_JOB))
    c = model.params
    t = 1.0e9
    step_alone(model, t)
    powers = []
    for k, junction_k in enumerate((290.0, 320.0, 350.0)):
        step_alone(model, t + 60.0 * (k + 1), temp_junction_k=np.array([junction_k]))
        powers.append(float(model.power.array[0]))
    assert powers == sorted(powers) and powers[0] < powers[-1]
    # A cool die over hot HBM: the HBM's limit cuts the clock.
    step_alone(model, t + 600.0, temp_junction_k=np.array([330.0]),
               temp_hbm_k=np.array([c.hbm_throttle_temp_k + 1.0]))
    assert model.thermal_on[0]
    assert model.clock.array[0] == pytest.approx(c.thermal_clock_frac)
    # Both back below their limits less the hysteresis: the cut lifts.
    step_alone(model, t + 660.0, temp_junction_k=np.array([330.0]),
               temp_hbm_k=np.array([c.hbm_throttle_temp_k - c.throttle_hysteresis_k - 1.0]))
    assert not model.thermal_on[0]


def test_host_power_scales_with_the_accelerators_and_bad_values_name_the_key() -> None:
    four = ComputeModel(parse_scenario(DAWN_DUSK + QUIET + "\n[compute]\n"
                                       "accelerators_per_node = 4\n"))
    assert four.params.host_power_w == pytest.approx(4 * 575.0)
    step_alone(four, 1.0e9)  # no job: host and four sleeping accelerators
    assert float(four.power.array[0]) == pytest.approx(4 * 575.0 + 4 * 15.0)
    assert four.meta()["host_power_w"] == pytest.approx(2300.0)
    for bad, message in (("-5.0", "out of range"), ('"lots"', "number"),
                         ("1e9", "out of range")):
        text = DAWN_DUSK + QUIET + f"\n[compute]\nhost_power_per_accelerator_w = {bad}\n"
        with pytest.raises(ScenarioError, match=r"compute\.host_power_per_accelerator_w"
                           ) as caught:
            ComputeModel(parse_scenario(text))
        assert message in str(caught.value)
    with pytest.raises(ScenarioError, match=r"compute\.leakage_frac.*idle_power_w"):
        ComputeModel(parse_scenario(DAWN_DUSK + QUIET + "\n[compute]\nleakage_frac = 0.5\n"))


def test_energy_ledgers_close_on_the_hot_case_with_leakage() -> None:
    eng = engine(DAWN_DUSK + QUIET + SMALL_AIRFRAME)
    command(eng, "submit_job", **LONG_JOB)
    compute = eng.compute_model
    drawn_j = 0.0
    throttled_steps = 0
    for _ in range(200):  # heats, throttles and cycles the throttle
        eng.step()
        drawn_j += float(compute.power.array.sum(dtype=np.float64)) * 60.0
        throttled_steps += int(compute.thermal_on[0])
    assert 0 < throttled_steps < 200
    thermal, power = eng.thermal, eng.models["power"]
    through = thermal.e_absorbed_j + thermal.e_generated_j
    assert (np.abs(thermal.ledger_residual_j()) / through).max() <= THERMAL_LEDGER_RELATIVE
    assert np.allclose(power.e_array_j, power.e_dissipated_j + power.stored_j(),
                       rtol=POWER_LEDGER_RTOL)
    assert (power.e_unserved_j == 0).all()
    # Compute's energy is the power it published, leakage and all (float32 fields).
    assert compute.fleet()["compute_energy_j"] == pytest.approx(drawn_j, rel=RELATIVE_POWER)


def test_junction_and_hbm_are_published_with_units_and_limits() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    fields = {f["name"]: f for f in eng.meta()["fields"]}
    junction, hbm = fields["temp_junction_k"], fields["temp_hbm_k"]
    assert junction["unit"] == "K" and hbm["unit"] == "K"
    # Warning 2 K past the throttle limit (the hold slipping), alarm 5 K past it.
    assert junction["limits"]["warn_high"] == pytest.approx(360.15)
    assert junction["limits"]["alarm_high"] == pytest.approx(363.15)
    assert hbm["limits"]["warn_high"] == pytest.approx(370.15)
    assert hbm["limits"]["alarm_high"] == pytest.approx(373.15)
    assert "temp_junction_max_k" in eng.header()["fleet"]


def test_die_limits_follow_the_scenarios_throttle_temperatures() -> None:
    """A scenario that throttles its dies at 80 °C and its HBM at 90 °C gets junction and
    HBM limits 2 K (warning) and 5 K (alarm) past those, and the limit monitor uses them;
    a throttle below 10 °C is a scenario error naming the key."""
    eng = engine(DAWN_DUSK + QUIET + """
[compute]
throttle_temp_k = 353.15
hbm_throttle_temp_k = 363.15
""")
    fields = {f["name"]: f for f in eng.meta()["fields"]}
    assert fields["temp_junction_k"]["limits"]["warn_high"] == pytest.approx(355.15)
    assert fields["temp_junction_k"]["limits"]["alarm_high"] == pytest.approx(358.15)
    assert fields["temp_hbm_k"]["limits"]["warn_high"] == pytest.approx(365.15)
    assert fields["temp_hbm_k"]["limits"]["alarm_high"] == pytest.approx(368.15)
    monitored = eng.limits.meta()["monitored"]
    assert monitored["temp_junction_k"]["alarm_high"] == pytest.approx(358.15)
    assert monitored["temp_hbm_k"]["warn_high"] == pytest.approx(365.15)
    with pytest.raises(ScenarioError, match=r"compute\.throttle_temp_k"):
        engine(DAWN_DUSK + QUIET + "\n[compute]\nthrottle_temp_k = 270.0\n")
