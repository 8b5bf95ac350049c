"""Power model: eclipses against the analytic shadow, the battery through an orbit, step-size
independence, the power cap and its events, heaters, and both planes of the default."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.computeutil import SMALL_AIRFRAME_POWER, SMALL_AIRFRAME_THERMAL
from tests.synthetic_orbit import (
    SUN_KM,
    cylinder_eclipse_fraction,
    period_s,
    positions_km,
    run_models,
)
from twin.astro.geometry import WGS84_A_KM, sunlit_fraction
from twin.core.clock import SimClock
from twin.core.constants import J_PER_WH
from twin.core.engine import Engine
from twin.models.power import PowerModel, PowerParams
from twin.models.thermal import ThermalModel, ThermalParams
from twin.scenario import ScenarioError, load_scenario, parse_scenario, parse_section

ECLIPSE_FRACTION_TOL = 0.002  # ~11 s of a 95-min orbit: penumbra (~9 s each side) is
# split between light and shadow by the conical model; the cylinder puts the edge mid-way
SOC_TOL_DT = 0.004  # 0.4 % of capacity (48 Wh) between dt 1 s and 60 s: a 60 s step that
# ends inside the penumbra (~9 s at beta 40 deg) counts it as a linear ramp over the step
TEMP_TOL_DT_K = 0.3  # between dt 1 s and 60 s, any node, any time on the 60 s grid


@pytest.mark.parametrize("alt_km", [550.0, 650.0])
@pytest.mark.parametrize("beta_deg", [0.0, 20.0, 45.0, 60.0])
def test_eclipse_fraction_matches_the_cylinder_shadow(alt_km: float, beta_deg: float) -> None:
    t = np.linspace(0.0, period_s(alt_km), 40_000, endpoint=False)
    pos = positions_km(t, alt_km, beta_deg)
    shadow = 1.0 - sunlit_fraction(pos, SUN_KM).mean()
    assert shadow == pytest.approx(cylinder_eclipse_fraction(alt_km, beta_deg),
                                   abs=ECLIPSE_FRACTION_TOL)


@pytest.mark.parametrize("alt_km", [550.0, 650.0])
def test_beta_above_critical_has_no_eclipse(alt_km: float) -> None:
    critical_deg = math.degrees(math.asin(WGS84_A_KM / (WGS84_A_KM + alt_km)))
    t = np.linspace(0.0, period_s(alt_km), 20_000, endpoint=False)
    sunlit = sunlit_fraction(positions_km(t, alt_km, critical_deg + 1.0), SUN_KM)
    assert sunlit.min() == 1.0
    assert cylinder_eclipse_fraction(alt_km, critical_deg + 1.0) == 0.0
    below = sunlit_fraction(positions_km(t, alt_km, critical_deg - 3.0), SUN_KM)
    assert below.min() == 0.0


def _models(n: int, power: PowerParams | None = None, thermal: ThermalParams | None = None
            ) -> list:
    thermal = thermal or ThermalParams()
    return [PowerModel(n, power or PowerParams(), thermal), ThermalModel(n, thermal)]


RECORD = ["soc_frac", "temp_radiator_k", "temp_compute_k", "temp_bus_k", "temp_battery_k",
          "sunlit_frac", "p_solar_w", "power_cap_w", "heater_power_w", "payload_power_w",
          "loop_heater_power_w", "bus_power_w"]


def _two_orbits(dt_s: float, betas: tuple[float, ...] = (0.0, 40.0)) -> tuple:
    n = len(betas)
    return run_models(_models(n), 2 * period_s(550.0), dt_s, np.full(n, 550.0),
                      np.array(betas), np.full(n, 0.3), RECORD)


def test_through_eclipse_soc_falls_and_radiator_cools_then_recharges_in_sun() -> None:
    _, out, _ = _two_orbits(10.0)
    sunlit = out["sunlit_frac"][:, 0]
    soc = out["soc_frac"][:, 0]
    radiator = out["temp_radiator_k"][:, 0]
    in_umbra = np.flatnonzero(sunlit == 0.0)
    start, end = in_umbra[0], in_umbra[np.flatnonzero(np.diff(in_umbra) > 1)[0]]
    assert (end - start) * 10.0 == pytest.approx(
        cylinder_eclipse_fraction(550.0, 0.0) * period_s(550.0), abs=30.0)
    assert np.all(np.diff(soc[start + 1:end + 1]) < 0)  # discharging all through the shadow
    # Edge-on radiators (yaw steering) lose only the albedo: ~130 W of ~6.8 kW, about 1 K.
    assert radiator[end] < radiator[start] - 0.5
    after = soc[end + 1:]
    assert after.max() == pytest.approx(PowerParams().soc_max_frac)  # recharged in sunlight
    depth = PowerParams().soc_max_frac - soc.min()
    assert 0.2 < depth < 0.5  # design depth of discharge ~0.34 at beta 0


def test_result_does_not_depend_on_step_size() -> None:
    times_1, fine, _ = _two_orbits(1.0)
    times_60, coarse, _ = _two_orbits(60.0)
    on_grid = np.arange(0, times_1.size, 60)
    assert np.allclose(times_1[on_grid], times_60)
    assert np.abs(fine["soc_frac"][on_grid] - coarse["soc_frac"]).max() < SOC_TOL_DT
    for key in ("temp_radiator_k", "temp_compute_k", "temp_bus_k", "temp_battery_k"):
        assert np.abs(fine[key][on_grid] - coarse[key]).max() < TEMP_TOL_DT_K, key


def test_electrical_energy_balances_exactly() -> None:
    models = _models(2)
    run_models(models, period_s(550.0), 30.0, np.full(2, 550.0), np.array([0.0, 40.0]),
               np.zeros(2), [])
    power: PowerModel = models[0]
    assert np.allclose(power.e_array_j, power.e_dissipated_j + power.stored_j(), rtol=1e-9)
    assert (power.e_unserved_j == 0).all()


def test_undersized_arrays_cap_compute_once_and_lift_the_cap_once() -> None:
    # Arrays a third of the design: the battery drains to its reserve in eclipse; the node
    # caps compute (one event), recharges in sunlight and lifts the cap (one event).
    params = PowerParams(array_area_m2=22.0, soc_initial_frac=0.32, recharge_reserve_w=3000.0)
    _, out, events = run_models(_models(1, params), 1.2 * period_s(550.0), 30.0,
                                    np.full(1, 550.0), np.zeros(1), np.array([2.0]), RECORD)
    kinds = [e["kind"] for e in events if e["kind"].startswith("power_cap")]
    assert kinds[:2] == ["power_cap", "power_cap_clear"]
    soc = out["soc_frac"][:, 0]
    cap = out["power_cap_w"][:, 0]
    capped = np.isfinite(cap)
    assert capped.any()
    # Compute obeys the cap from the next step on (it reads last step's cap).
    following = out["payload_power_w"][1:, 0]
    assert (following[capped[:-1]] <= cap[:-1][capped[:-1]] + 1e-3).all()  # float32 field
    # Compute is shed at the reserve; the bus alone (1 kW, ~30 min of eclipse) then takes
    # at most a further 0.5 kWh, 4 % of the battery.
    assert soc.min() > params.soc_reserve_frac - 0.045
    assert (soc[~capped] >= params.soc_reserve_frac - 1e-6).all()


def test_heater_keeps_a_cold_battery_warm_and_draws_power() -> None:
    # An oversized bus radiator and no compute: the bus runs cold; the heater holds the
    # battery, on an insulating mount (5 W/K), inside its thermostat band.
    # On the small airframe (tests/computeutil.py), whose battery mass this was sized on.
    thermal = ThermalParams(**{**SMALL_AIRFRAME_THERMAL, "bus_radiator_area_m2": 6.0,
                               "bus_battery_conductance_w_k": 5.0})
    power = PowerParams(**{**SMALL_AIRFRAME_POWER, "compute_load_w": 0.0})
    times, out, _ = run_models(_models(1, power, thermal), 6 * period_s(550.0), 60.0,
                               np.full(1, 550.0), np.array([30.0]), np.zeros(1), RECORD)
    heater = out["heater_power_w"][:, 0]
    battery = out["temp_battery_k"][:, 0]
    assert out["temp_bus_k"][-1, 0] < power.heater_on_k - 10.0
    assert heater.max() == power.heater_power_w and 0 < (heater > 0).mean() < 1
    settled = times > 4 * period_s(550.0)
    assert battery[settled].min() > power.heater_on_k - 1.0
    assert battery[settled].max() < power.heater_off_k + 1.0


@pytest.mark.parametrize("dt_s", [60.0, 600.0])
def test_loop_heater_keeps_chips_warm_and_the_radiator_unfrozen_with_the_payload_off(
        dt_s: float) -> None:
    # The worst cold case: no payload heat at all, 550 km, beta 0 (35 min eclipses). The
    # loop heater (chips' thermostat 10..15 °C, radiator freeze guard 207..211 K) must hold
    # the chips in their operating range and the radiator above its 205 K warning
    # (ammonia freezes at 195.4 K), drawing its power as a load, at any step size.
    power = PowerParams(compute_load_w=0.0)
    models = _models(1, power)
    times, out, _ = run_models(models, 8 * period_s(550.0), dt_s, np.full(1, 550.0),
                               np.zeros(1), np.zeros(1), RECORD)
    settled = times > 4 * period_s(550.0)
    heater = out["loop_heater_power_w"][settled, 0]
    assert 0.5 < (heater > 0).mean() <= 1.0 and heater.max() == power.loop_heater_power_w
    assert out["temp_compute_k"][settled, 0].min() > power.loop_heater_on_k - 1.0
    assert out["temp_radiator_k"][settled, 0].min() > 205.0
    # The heater is a load, paid for by the arrays and battery, and heat in the thermal
    # ledger.
    power_model: PowerModel = models[0]
    parts = out["bus_power_w"][-1] + out["heater_power_w"][-1] + out["loop_heater_power_w"][-1]
    assert power_model.p_load.array == pytest.approx(parts, rel=1e-6)
    assert np.allclose(power_model.e_array_j,
                       power_model.e_dissipated_j + power_model.stored_j(), rtol=1e-9)
    thermal: ThermalModel = models[1]
    relative = np.abs(thermal.ledger_residual_j()) / (thermal.e_absorbed_j
                                                       + thermal.e_generated_j)
    assert relative.max() <= 1e-3


def test_both_planes_of_default_differ_dawn_dusk_steady_53_deg_cycling() -> None:
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    groups = np.array([s.group for s in scenario.satellites])
    dawn, mid = groups == "dawn-dusk", groups == "mid-53"
    sunlit, soc = [], []
    for _ in range(100):
        engine.step()
        sunlit.append(engine.quantity("sunlit_frac").copy())
        soc.append(engine.power.soc.array.copy())
    sunlit_a, soc_a = np.array(sunlit), np.array(soc)
    assert (sunlit_a[:, dawn] == 1.0).all()
    assert np.ptp(soc_a[:, dawn], axis=0).max() < 1e-3  # full and steady
    assert (sunlit_a[:, mid].min(axis=0) == 0.0).all()  # every 53 deg node sees eclipse
    assert (np.ptp(soc_a[:, mid], axis=0) > 0.03).all()  # and cycles its battery
    meta = engine.meta()
    catalog = {f["name"]: f for f in meta["fields"]}
    assert catalog["soc_frac"]["limits"]["alarm_low"] == pytest.approx(0.2)
    assert catalog["temp_compute_k"]["limits"]["alarm_high"] == pytest.approx(358.15)
    header = engine.header()["fleet"]
    assert {"p_solar_total_w", "soc_min_frac", "q_rejected_total_w"} <= set(header)


def test_fleet_totals_equal_sums_over_the_published_fields() -> None:
    """Power and thermal keep their fleet totals from the step's float64 rows: they must
    agree with the float32 fields they publish (to float32 rounding), before the first
    step (counted from the fields) and while heaters cycle."""
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    power, thermal = engine.power, engine.thermal

    def from_fields() -> dict[str, float]:
        soc = power.soc.array.astype(np.float64)
        return {
            "p_solar_total_w": power.p_solar.array.sum(dtype=np.float64),
            "p_load_total_w": power.p_load.array.sum(dtype=np.float64),
            "soc_min_frac": soc.min(), "soc_mean_frac": soc.mean(),
            "loop_heater_total_w": power.loop_heater.array.sum(dtype=np.float64),
            "q_absorbed_total_w": thermal.q_absorbed.array.sum(dtype=np.float64),
            "q_rejected_total_w": thermal.q_rejected.array.sum(dtype=np.float64),
            "temp_battery_min_k": float(thermal.temp_battery.array.min()),
            "temp_compute_max_k": float(thermal.temp_compute.array.max()),
        }

    for step in range(120):
        fleet = {**power.fleet(), **thermal.fleet()}
        for name, expected in from_fields().items():
            assert fleet[name] == pytest.approx(expected, rel=1e-6, abs=1e-3), (step, name)
        engine.step()
    assert power.p_solar.array.sum() > 0.0 and thermal.q_rejected.array.sum() > 0.0


def test_battery_failure_means_no_storage_and_a_cap_in_eclipse() -> None:
    models = _models(1)
    _, out, _ = run_models(models, period_s(550.0), 30.0, np.full(1, 550.0), np.zeros(1),
                           np.zeros(1), RECORD,
                           extra_shared={"battery_health_frac": np.zeros(1)})
    dark = out["sunlit_frac"][:, 0] == 0.0
    dark[1:] &= dark[:-1]  # dark all through the step
    dark[0] = False  # the epoch step shows flows without time passing
    assert (out["payload_power_w"][dark, 0] == 0.0).all()


def test_power_params_reject_inconsistent_values() -> None:
    with open(load_scenario("default").source, encoding="utf-8") as handle:
        base = handle.read()
    # default.toml has a [power] table already: add the bad key to it.
    bad = parse_scenario(base.replace("[power]\n", "[power]\nsoc_reserve_frac = 0.95\n"), "x.toml")
    with pytest.raises(ScenarioError, match=r"power\.soc_reserve_frac"):
        parse_section(PowerParams, bad, "power")
    assert PowerParams().battery_capacity_wh * J_PER_WH == pytest.approx(7.56e7)  # 21 kWh
    bad_band = parse_scenario(base.replace("[power]\n", "[power]\nfreeze_guard_off_k = 200.0\n"),
                              "x.toml")
    with pytest.raises(ScenarioError, match=r"power\.freeze_guard_off_k"):
        parse_section(PowerParams, bad_band, "power")
