"""The static parts of the economics: one node's mass budget, the fleet's capital cost and
its operating cost rates (docs/models.md, "Economics").

Everything here follows from the scenario's tables alone (``[power]``, ``[thermal]``,
``[compute]``, ``[economics]``); what the fleet delivers comes from a run (``ledger``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from twin.economics.params import EconomicsParams, economics_params
from twin.models.compute import ComputeParams
from twin.models.power import PowerParams
from twin.models.thermal import ThermalParams
from twin.scenario import Scenario, parse_section

STANDARD_GRAVITY_M_S2 = 9.80665
SOLAR_CONSTANT_W_M2 = 1361.0
SECONDS_PER_YEAR = 365.25 * 86400.0


@dataclass(frozen=True)
class NodeDesign:
    """What one node carries, from the model tables (SI, units in the names)."""

    accelerators: int
    array_area_m2: float
    array_bol_w: float
    radiator_panel_m2: float
    battery_wh: float
    it_power_w: float

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> NodeDesign:
        power = parse_section(PowerParams, scenario, "power")
        thermal = parse_section(ThermalParams, scenario, "thermal")
        compute = parse_section(ComputeParams, scenario, "compute")
        n = compute.accelerators_per_node
        # Beginning of life, at the cells' reference temperature, Sun-pointed.
        bol_w = (power.array_area_m2 * SOLAR_CONSTANT_W_M2 * power.cell_efficiency_frac
                 * power.packing_frac)
        # The compute radiator is a two-sided panel (radiator_area_m2 a face); the bus
        # radiator one-sided: panel area is what is built and launched.
        panel_m2 = thermal.radiator_area_m2 + thermal.bus_radiator_area_m2
        it_w = n * (compute.full_power_w + compute.host_power_per_accelerator_w)
        return cls(n, power.array_area_m2, bol_w, panel_m2, power.battery_capacity_wh, it_w)


@dataclass(frozen=True)
class MassBudget:
    """One node's mass, kg."""

    arrays_kg: float
    radiators_kg: float
    battery_kg: float
    compute_kg: float
    isl_kg: float
    bus_kg: float
    structure_kg: float
    margin_kg: float
    dry_kg: float
    propellant_kg: float
    wet_kg: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def mass_budget(design: NodeDesign, p: EconomicsParams) -> MassBudget:
    """Subsystems, plus structure as a fraction of them, plus margin on the dry mass, plus
    propellant for ``delta_v_m_s`` from the rocket equation:
    m_p = m_dry (exp(Δv / (g0 Isp)) − 1)."""
    arrays = design.array_area_m2 * p.array_kg_per_m2
    radiators = design.radiator_panel_m2 * p.radiator_kg_per_m2
    battery = design.battery_wh / p.battery_wh_per_kg
    compute = design.accelerators * p.compute_kg_per_accelerator
    isl = p.isl_terminals_per_node * p.isl_terminal_kg
    subsystems = arrays + radiators + battery + compute + isl + p.bus_dry_kg
    structure = p.structure_frac * subsystems
    margin = p.margin_frac * (subsystems + structure)
    dry = subsystems + structure + margin
    propellant = dry * math.expm1(p.delta_v_m_s / (STANDARD_GRAVITY_M_S2 * p.isp_s))
    return MassBudget(arrays, radiators, battery, compute, isl, p.bus_dry_kg, structure, margin,
                      dry, propellant, dry + propellant)


@dataclass(frozen=True)
class CapitalCost:
    """Fleet capital cost, $, by item (``total_usd`` their sum)."""

    accelerators_usd: float
    hosts_usd: float
    arrays_usd: float
    batteries_usd: float
    radiators_usd: float
    isl_usd: float
    buses_usd: float
    launch_usd: float
    ground_segment_usd: float

    @property
    def total_usd(self) -> float:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total_usd": self.total_usd}


def capital_cost(design: NodeDesign, mass: MassBudget, n_nodes: int,
                 p: EconomicsParams) -> CapitalCost:
    """Hardware per unit or per W/Wh/m2, launch = wet mass × $/kg, plus the ground segment."""
    n = n_nodes
    return CapitalCost(
        accelerators_usd=n * design.accelerators * p.accelerator_unit_usd,
        hosts_usd=n * p.host_per_node_usd,
        arrays_usd=n * design.array_bol_w * p.array_usd_per_w,
        batteries_usd=n * design.battery_wh * p.battery_usd_per_wh,
        radiators_usd=n * design.radiator_panel_m2 * p.radiator_usd_per_m2,
        isl_usd=n * p.isl_terminals_per_node * p.isl_terminal_usd,
        buses_usd=n * p.bus_per_node_usd,
        launch_usd=n * mass.wet_kg * p.launch_usd_per_kg,
        ground_segment_usd=p.ground_segment_usd,
    )


def staff_usd_per_s(p: EconomicsParams) -> float:
    """Operations staff cost rate, $/s."""
    return p.ops_staff * p.staff_usd_per_year / SECONDS_PER_YEAR


def capex_usd_per_s(capex: CapitalCost, p: EconomicsParams) -> float:
    """Capital cost spread linearly over the mission life, $/s (no discounting)."""
    return capex.total_usd / (p.mission_life_years * SECONDS_PER_YEAR)


@dataclass(frozen=True)
class StaticEconomics:
    """Everything the economics knows before a run: design, mass, capex, parameters."""

    params: EconomicsParams
    design: NodeDesign
    mass: MassBudget
    capex: CapitalCost
    n_nodes: int
    peak_flop_s_per_accelerator: float

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> StaticEconomics:
        """Raises ScenarioError naming file and key for a bad ``[economics]`` (or model)
        table."""
        p = economics_params(scenario)
        design = NodeDesign.from_scenario(scenario)
        mass = mass_budget(design, p)
        n = len(scenario.satellites)
        peak = parse_section(ComputeParams, scenario, "compute").peak_flop_s
        return cls(p, design, mass, capital_cost(design, mass, n, p), n, peak)
