"""Economics: cost arithmetic against a hand calculation, the ledger's balances, the
[economics] table's errors, and a cross-check of the static parts against spacedc-mdao
(``orbitdc``, a test dependency) on matched inputs (docs/models.md, "Economics")."""

from __future__ import annotations

import math

import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.economics import (
    LAUNCH_PRESETS_USD_PER_KG,
    RunLedger,
    StaticEconomics,
    kpis,
    operating_cost_usd,
)
from twin.economics.budget import SECONDS_PER_YEAR
from twin.scenario import ScenarioError, load_scenario, parse_scenario

# Two nodes with round numbers, so the hand calculation below is short.
SMALL = """
[scenario]
name = "two"
epoch = "2026-03-20T12:00:00Z"
[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 1
sats_per_plane = 2
phasing = 0
[power]
array_area_m2 = 50.0
cell_efficiency_frac = 0.3
packing_frac = 0.9
battery_capacity_wh = 15000.0
[thermal]
radiator_area_m2 = 10.0
bus_radiator_area_m2 = 4.0
[compute]
accelerators_per_node = 8
[economics]
array_kg_per_m2 = 2.0
radiator_kg_per_m2 = 5.0
battery_wh_per_kg = 150.0
compute_kg_per_accelerator = 10.0
isl_terminals_per_node = 2
isl_terminal_kg = 15.0
bus_dry_kg = 50.0
structure_frac = 0.25
margin_frac = 0.1
delta_v_m_s = 0.0
accelerator_unit_usd = 20000.0
host_per_node_usd = 100000.0
array_usd_per_w = 40.0
battery_usd_per_wh = 0.5
radiator_usd_per_m2 = 4000.0
isl_terminal_usd = 200000.0
bus_per_node_usd = 1000000.0
launch_vehicle = "starship"
ground_segment_usd = 10000000.0
ground_station_usd_per_min = 5.0
ops_staff = 10.0
staff_usd_per_year = 150000.0
mission_life_years = 4.0
"""


def test_mass_and_capital_cost_match_a_hand_calculation() -> None:
    static = StaticEconomics.from_scenario(parse_scenario(SMALL))
    # Per node: arrays 50 x 2 = 100, radiators (10 + 4) x 5 = 70, battery 15000/150 = 100,
    # compute 8 x 10 = 80, ISL 2 x 15 = 30, bus 50: 430 kg; structure 0.25 x 430 = 107.5;
    # margin 0.1 x 537.5 = 53.75; dry 591.25 kg; no delta-v, no propellant.
    mass = static.mass
    assert mass.arrays_kg == pytest.approx(100.0, rel=1e-12)
    assert mass.structure_kg == pytest.approx(107.5, rel=1e-12)
    assert mass.dry_kg == pytest.approx(591.25, rel=1e-12)
    assert mass.propellant_kg == 0.0 and mass.wet_kg == pytest.approx(591.25, rel=1e-12)
    # Fleet of 2: accelerators 2 x 8 x 20k = 320k; hosts 200k; arrays 2 x 50 m2 x 1361 x
    # 0.3 x 0.9 W/m2 x 40 $/W = 1,469,880; batteries 2 x 15000 x 0.5 = 15k; radiators
    # 2 x 14 x 4000 = 112k; ISL 2 x 2 x 200k = 800k; buses 2M; launch 2 x 591.25 x 200 =
    # 236.5k; ground 10M.
    capex = static.capex
    assert capex.arrays_usd == pytest.approx(1_469_880.0, rel=1e-12)
    assert capex.launch_usd == pytest.approx(236_500.0, rel=1e-12)
    hand = 320e3 + 200e3 + 1_469_880.0 + 15e3 + 112e3 + 800e3 + 2e6 + 236_500.0 + 10e6
    assert capex.total_usd == pytest.approx(hand, rel=1e-12)


def test_propellant_follows_the_rocket_equation() -> None:
    text = SMALL.replace("delta_v_m_s = 0.0", "delta_v_m_s = 147.1\nisp_s = 1500.0")
    mass = StaticEconomics.from_scenario(parse_scenario(text)).mass
    # exp(147.1 / (9.80665 x 1500)) - 1 = exp(0.0100) - 1 = 0.010050
    assert mass.propellant_kg == pytest.approx(591.25 * math.expm1(147.1 / 14709.975),
                                               rel=1e-12)
    assert mass.propellant_kg == pytest.approx(5.942, abs=0.01)


def test_operating_cost_and_kpis_match_a_hand_calculation() -> None:
    static = StaticEconomics.from_scenario(parse_scenario(SMALL))
    day = 86400.0
    cost = operating_cost_usd(static, day, contact_node_s=600.0)
    # capex share: total / (4 years) x 1 day; staff 10 x 150k / year x 1 day; stations
    # 10 min x $5.
    assert cost["capex_share_usd"] == pytest.approx(static.capex.total_usd / (4 * 365.25),
                                                    rel=1e-12)
    assert cost["staff_usd"] == pytest.approx(1.5e6 / 365.25, rel=1e-12)
    assert cost["ground_station_usd"] == pytest.approx(50.0, rel=1e-12)
    books = {"duration_s": day, "contact_node_min": 10.0, "energy_compute_j": 3.6e9,
             "pflop_days_useful": 2.0, "accel_h_delivered": 200.0, "accel_h_installed": 384.0,
             "accel_h_shortfall_by_limit": {"demand": 100.0, "power": 84.0},
             "soc_below_reserve_node_h": 0.0, "battery_temp_out_node_h": 0.0,
             "thermal_throttled_node_h": 4.8}
    k = kpis(static, books)
    assert k["usd_per_pflop_day"] == pytest.approx(cost["total_usd"] / 2.0, rel=1e-12)
    assert k["usd_per_compute_kwh"] == pytest.approx(cost["total_usd"] / 1000.0, rel=1e-12)
    assert k["delivered_over_installed"] == pytest.approx(200.0 / 384.0, rel=1e-12)
    assert k["binding_limit"] == "demand" and k["binding_physical_limit"] == "power"
    assert k["violation_frac"] == pytest.approx(4.8 / 48.0, rel=1e-12) and k["violation"]
    # Terrestrial: hardware 520k over 4 years, facility 2 x 8 x (700 + 575) W = 20.4 kW
    # x $10M/MW over 15 years, upkeep 5 %/yr, electricity 1,000 kWh x 1.2 x $0.08.
    facility = 0.0204 * 10e6
    ground = (520e3 / (4 * 365.25) + facility / (15 * 365.25) + facility * 0.05 / 365.25
              + 1000.0 * 1.2 * 0.08)
    assert k["terrestrial_usd_per_pflop_day"] == pytest.approx(ground / 2.0, rel=1e-12)
    assert k["space_over_terrestrial"] == pytest.approx(cost["total_usd"] / ground, rel=1e-12)


def test_launch_presets_and_an_explicit_price() -> None:
    assert LAUNCH_PRESETS_USD_PER_KG == {"falcon9": 3000.0, "falcon_heavy": 1500.0,
                                         "starship": 200.0}
    for vehicle, price in LAUNCH_PRESETS_USD_PER_KG.items():
        text = SMALL.replace('launch_vehicle = "starship"', f'launch_vehicle = "{vehicle}"')
        assert StaticEconomics.from_scenario(parse_scenario(text)).params.launch_usd_per_kg \
            == price
    text = SMALL.replace('launch_vehicle = "starship"', "launch_cost_per_kg_usd = 750.0")
    assert StaticEconomics.from_scenario(parse_scenario(text)).capex.launch_usd == \
        pytest.approx(2 * 591.25 * 750.0, rel=1e-12)


@pytest.mark.parametrize(("edit", "key", "words"), [
    ("battery_wh_per_kg = 150.0", "economics.battery_wh_pr_kg", "Did you mean"),
    ('launch_vehicle = "starship"', "economics.launch_vehicle", "falcon9"),
    ("margin_frac = 0.1", "economics.margin_frac", "out of range"),
    ("mission_life_years = 4.0", "economics.mission_life_years", "0 < mission_life"),
])
def test_bad_economics_keys_name_file_and_key(edit: str, key: str, words: str) -> None:
    bad = {"economics.battery_wh_pr_kg": "battery_wh_pr_kg = 150.0",
           "economics.launch_vehicle": 'launch_vehicle = "saturn5"',
           "economics.margin_frac": "margin_frac = -0.1",
           "economics.mission_life_years": "mission_life_years = 0.0"}[key]
    scenario = parse_scenario(SMALL.replace(edit, bad), source="fleet.toml")
    with pytest.raises(ScenarioError) as caught:
        StaticEconomics.from_scenario(scenario)
    assert caught.value.file == "fleet.toml" and caught.value.key == key
    assert words in str(caught.value)


def test_ledger_closes_energy_and_accelerator_hours() -> None:
    """Three hours of `default` at 60 s (two eclipses of the 53° shell)."""
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    ledger = RunLedger(engine, StaticEconomics.from_scenario(scenario))
    for _ in range(180):
        engine.step()
        ledger.record(60.0)
    books = ledger.books()
    # Energy: the arrays' output drawn = loads + chemical energy stored (from the SOC, not
    # from the flows) + battery losses + regulation loss. The residual is the mean-of-step
    # treatment of steps split at the shadow edge: within 0.1 % of the battery throughput.
    residual = (books["energy_generated_j"] - books["energy_used_j"]
                - books["battery_chemical_change_j"] - books["battery_losses_j"]
                - books["regulation_loss_j"])
    throughput = books["battery_charge_j"] + books["battery_discharge_j"]
    assert books["battery_discharge_j"] > 0.0  # the run crosses eclipses
    assert abs(residual) < 1e-3 * throughput
    assert books["energy_generated_j"] <= books["energy_available_j"]
    # Compute energy: the ledger's sum of the field against compute's own running total.
    assert books["energy_compute_j"] == pytest.approx(books["compute_energy_total_j"],
                                                      rel=1e-6)
    # Accelerator-hours: installed = delivered + every shortfall by limit, exactly; the
    # delivered (from delivered_flop_s) against compute's own work done (useful + lost).
    installed = 40 * 8 * 3.0
    assert books["accel_h_installed"] == pytest.approx(installed, rel=1e-12)
    assert books["accel_h_available"] <= installed
    assert books["accel_h_busy"] <= books["accel_h_available"]
    assert books["accel_h_delivered"] + sum(books["accel_h_shortfall_by_limit"].values()) \
        == pytest.approx(installed, rel=1e-9)
    assert books["accel_h_delivered"] == pytest.approx(
        books["accel_h_useful"] + books["accel_h_lost"], rel=0.01)
    assert books["lifecycle_totals"] == [] or all(isinstance(k, str)
                                                  for k in books["lifecycle_totals"])


def test_static_parts_match_spacedc_mdao_on_matched_inputs() -> None:
    """orbitdc.models.cost.space_cost with the same items, no learning, no discounting,
    no replacement (nobody services a node in orbit): the same capex, and the same $ per
    PFLOP-day for a constant delivered rate over whole years."""
    cost_model = pytest.importorskip("orbitdc.models.cost")
    static = StaticEconomics.from_scenario(parse_scenario(SMALL))
    p, capex, n = static.params, static.capex, static.n_nodes
    delivered_tflops = 3000.0
    theirs = cost_model.space_cost(
        n_accelerators=n * 8, accel_unit_cost_usd=p.accelerator_unit_usd, accel_mass_kg=10.0,
        payload_factor=1.0, array_cost_usd=capex.arrays_usd,
        battery_cost_usd=capex.batteries_usd, radiator_cost_usd=capex.radiators_usd,
        n_satellites=n, bus_cost_per_sat_usd=p.bus_per_node_usd + p.host_per_node_usd,
        comms_cost_per_sat_usd=p.isl_terminals_per_node * p.isl_terminal_usd,
        launch_mass_kg=n * static.mass.wet_kg, launch_cost_per_kg_usd=p.launch_usd_per_kg,
        expected_failures=0.0, ground_segment_usd=p.ground_segment_usd,
        annual_ops_usd=p.ops_staff * p.staff_usd_per_year, mission_years=4.0,
        discount_rate=0.0, delivered_tflops=delivered_tflops, delivered_fraction=1.0)
    assert theirs.capex_usd == pytest.approx(capex.total_usd, rel=1e-12)
    duration = 4.0 * SECONDS_PER_YEAR
    books = {"duration_s": duration, "contact_node_min": 0.0, "energy_compute_j": 1.0,
             "pflop_days_useful": delivered_tflops / 1000.0 * duration / 86400.0,
             "accel_h_delivered": 1.0, "accel_h_installed": 1.0,
             "accel_h_shortfall_by_limit": {}, "soc_below_reserve_node_h": 0.0,
             "battery_temp_out_node_h": 0.0, "thermal_throttled_node_h": 0.0}
    ours = kpis(static, books)["usd_per_pflop_day"]
    assert ours == pytest.approx(theirs.lcoc_per_pflop_day, rel=1e-9)
