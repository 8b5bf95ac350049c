"""The ``[economics]`` table: mass, cost and terrestrial-reference parameters.

Every default has its source in docs/models.md ("Economics"). Units are in the names
(kg, usd, w, wh, m2, years). The table is kept raw by the scenario loader and parsed here
with ``parse_section``, so a wrong key or value is reported naming the file and the key
(``economics.launch_cost_per_kg_usd``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.scenario import Scenario, parse_section

LAUNCH_PRESETS_USD_PER_KG: dict[str, float] = {
    "falcon9": 3000.0,        # Falcon 9 today, ~3,000 $/kg to LEO
    "falcon_heavy": 1500.0,   # Falcon Heavy, ~1,500 $/kg
    "starship": 200.0,        # Suncatcher paper's mid-2030s target, ~200 $/kg
}
"""Launch price presets, $/kg to LEO (docs/models.md, "Economics")."""


def _bounded(default: float, unit: str, low: float = 0.0, high: float | None = None) -> float:
    meta: dict[str, object] = {"min": low, "unit": unit}
    if high is not None:
        meta["max"] = high
    return field(default=default, metadata=meta)  # type: ignore[return-value]


@dataclass(frozen=True)
class TerrestrialParams:
    """``[economics.terrestrial]``: the ground data center the orbital one is compared to.

    Attributes:
        pue: Power usage effectiveness (facility power / IT power).
        electricity_usd_per_kwh: Price of grid electricity.
        facility_capex_usd_per_mw: Building, power and cooling per MW of IT power.
        facility_life_years: Years the facility's capex is spread over.
        maintenance_frac_per_year: Facility upkeep per year, fraction of its capex.
    """

    pue: float = _bounded(1.2, "1", 1.0, 5.0)
    electricity_usd_per_kwh: float = _bounded(0.08, "$/kWh", 0.0, 10.0)
    facility_capex_usd_per_mw: float = _bounded(10.0e6, "$/MW", 0.0, 1e9)
    facility_life_years: float = field(default=15.0, metadata={"gt": 0.0, "max": 100.0,
                                                               "unit": "yr"})
    maintenance_frac_per_year: float = _bounded(0.05, "1/yr", 0.0, 1.0)


@dataclass(frozen=True)
class EconomicsParams:
    """``[economics]``: per-node mass budget, capital and operating cost (docs/models.md).

    Attributes:
        array_kg_per_m2: Solar array areal mass (rigid triple-junction panel).
        radiator_kg_per_m2: Radiator panel areal mass (per m2 of panel, both faces).
        battery_wh_per_kg: Battery pack specific energy.
        compute_kg_per_accelerator: Compute hardware per accelerator, host share included.
        isl_terminals_per_node: Optical inter-satellite link terminals per node.
        isl_terminal_kg: Mass of one ISL terminal.
        bus_dry_kg: Avionics, attitude control, propulsion hardware per node.
        structure_frac: Structure as a fraction of the subsystems' mass.
        margin_frac: Mass growth allowance on the dry mass.
        delta_v_m_s: Station keeping and disposal budget over the mission life.
        isp_s: Specific impulse of the thruster (propellant from the rocket equation).
        accelerator_unit_usd: One accelerator.
        host_per_node_usd: The rest of a node's compute hardware (CPUs, memory, switches).
        array_usd_per_w: Solar array, per W of beginning-of-life output.
        battery_usd_per_wh: Battery, per Wh of capacity.
        radiator_usd_per_m2: Radiator panel, per m2.
        isl_terminal_usd: One ISL terminal.
        bus_per_node_usd: Bus and integration per node.
        launch_vehicle: Launch price preset (falcon9, falcon_heavy, starship).
        launch_cost_per_kg_usd: Launch price; 0 takes the preset's.
        ground_segment_usd: Ground segment capex (stations, operations centre).
        ground_station_usd_per_min: Ground-station time, per minute of contact used.
        ops_staff: Operations staff (full-time equivalents).
        staff_usd_per_year: Fully loaded cost of one.
        mission_life_years: Years the capex is spread over (linear, no discounting).
    """

    array_kg_per_m2: float = _bounded(3.5, "kg/m2", 0.0, 100.0)
    radiator_kg_per_m2: float = _bounded(5.0, "kg/m2", 0.0, 100.0)
    battery_wh_per_kg: float = field(default=150.0, metadata={"gt": 0.0, "max": 1000.0,
                                                              "unit": "Wh/kg"})
    compute_kg_per_accelerator: float = _bounded(16.3, "kg", 0.0, 1000.0)
    isl_terminals_per_node: int = field(default=4, metadata={"min": 0, "max": 16,
                                                             "unit": "count"})
    isl_terminal_kg: float = _bounded(15.0, "kg", 0.0, 1000.0)
    bus_dry_kg: float = _bounded(60.0, "kg", 0.0, 1e5)
    structure_frac: float = _bounded(0.20, "1", 0.0, 2.0)
    margin_frac: float = _bounded(0.20, "1", 0.0, 2.0)
    delta_v_m_s: float = _bounded(100.0, "m/s", 0.0, 5000.0)
    isp_s: float = field(default=1500.0, metadata={"gt": 0.0, "max": 10000.0, "unit": "s"})
    accelerator_unit_usd: float = _bounded(25_000.0, "$", 0.0, 1e8)
    host_per_node_usd: float = _bounded(150_000.0, "$", 0.0, 1e9)
    array_usd_per_w: float = _bounded(50.0, "$/W", 0.0, 1e4)
    battery_usd_per_wh: float = _bounded(0.5, "$/Wh", 0.0, 1e3)
    radiator_usd_per_m2: float = _bounded(5000.0, "$/m2", 0.0, 1e7)
    isl_terminal_usd: float = _bounded(250_000.0, "$", 0.0, 1e9)
    bus_per_node_usd: float = _bounded(2.0e6, "$", 0.0, 1e10)
    launch_vehicle: str = field(default="falcon9",
                                metadata={"choices": tuple(LAUNCH_PRESETS_USD_PER_KG)})
    launch_cost_per_kg_usd: float = _bounded(0.0, "$/kg", 0.0, 1e6)
    ground_segment_usd: float = _bounded(20.0e6, "$", 0.0, 1e11)
    ground_station_usd_per_min: float = _bounded(10.0, "$/min", 0.0, 1e5)
    ops_staff: float = _bounded(20.0, "FTE", 0.0, 1e5)
    staff_usd_per_year: float = _bounded(200_000.0, "$/yr", 0.0, 1e8)
    mission_life_years: float = field(default=5.0, metadata={"gt": 0.0, "max": 50.0,
                                                             "unit": "yr"})
    terrestrial: TerrestrialParams = field(default_factory=TerrestrialParams)

    @property
    def launch_usd_per_kg(self) -> float:
        """The launch price in force: the explicit one, else the preset's."""
        if self.launch_cost_per_kg_usd > 0.0:
            return self.launch_cost_per_kg_usd
        return LAUNCH_PRESETS_USD_PER_KG[self.launch_vehicle]


def economics_params(scenario: Scenario) -> EconomicsParams:
    """The scenario's ``[economics]`` table, validated (defaults where it has none).

    Raises:
        ScenarioError: naming the file and key, e.g. ``economics.battery_wh_per_kg``.
    """
    return parse_section(EconomicsParams, scenario, "economics")
