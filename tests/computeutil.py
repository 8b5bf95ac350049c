"""Helpers for the compute tests: small scenarios as TOML text and a stepping engine."""

from __future__ import annotations

from typing import Any

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import parse_scenario

STATION = """
[[station]]
name = "Svalbard"
lat_deg = 78.23
lon_deg = 15.41
min_elevation_deg = 5.0
downlink_bps = 1.0e9
"""

# Radiation and arrivals off unless a test turns them on: hand-checkable runs.
QUIET = """
[workload]
arrivals_per_node_h = 0.0
[radiation]
see_scale = 0.0
"""

# The design point's radiators and arrays were sized for a 400 W host (50 W per
# accelerator); with a DGX-class host (575 W per accelerator, the default) a fully busy
# node outgrows them and throttles (docs/models.md, "Junction, HBM and leakage"). Tests
# of work at full clock keep the old host.
SMALL_HOST = """
[compute]
host_power_per_accelerator_w = 50.0
"""

# The airframe the built-in [thermal] and [power] defaults described before they became
# the default scenario's design point (docs/models.md, "Design point and sizing"): sized
# for a 400 W host (50 W per accelerator) and a 5.6 kW payload. Tests whose hand
# calculations were made on it (the DGX-class host's hot case on a small radiator, the
# cold case, the battery heater) pin it with these.
SMALL_AIRFRAME_THERMAL = {"radiator_area_m2": 6.0, "radiator_heat_capacity_j_k": 50.0e3,
                          "bus_radiator_area_m2": 3.2, "battery_heat_capacity_j_k": 80.0e3,
                          "bus_battery_conductance_w_k": 30.0}
SMALL_AIRFRAME_POWER = {"array_area_m2": 40.0, "battery_capacity_wh": 12_000.0,
                        "max_charge_w": 6_000.0, "max_discharge_w": 12_000.0,
                        "loop_heater_power_w": 500.0, "compute_load_w": 5_600.0}
SMALL_AIRFRAME = "".join(
    f"\n[{table}]\n" + "".join(f"{key} = {value!r}\n" for key, value in values.items())
    for table, values in (("thermal", SMALL_AIRFRAME_THERMAL), ("power", SMALL_AIRFRAME_POWER)))

DAWN_DUSK = """
[scenario]
name = "one-node"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[sun_synchronous]]
name = "dd"
altitude_km = 650.0
ltan_h = 18.0
planes = 1
sats_per_plane = 1
""" + STATION

WALKER = """
[scenario]
name = "walker"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 1
sats_per_plane = 1
phasing = 0
""" + STATION



def engine(text: str, dt_s: float = 60.0, seed: int | None = None,
           control_period_s: float | None = None) -> Engine:
    """An engine for a TOML scenario text, stepping ``dt_s`` per step (rate 1 Hz).

    The control loop runs once a step (its control period is the step) unless
    ``control_period_s`` says otherwise: these tests check what one model step does
    with the last step's values (tests/test_substep.py checks the sub-steps)."""
    scenario = parse_scenario(text)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=dt_s, fast=True)
    return Engine(scenario, clock, seed=seed,
                  control_period_s=dt_s if control_period_s is None else control_period_s)


def command(eng: Engine, cmd: str, **args: Any) -> dict[str, Any]:
    """Run a model's command as the server would: checked, then handled (errors raise)."""
    return eng.run_command({"cmd": cmd, **args})
