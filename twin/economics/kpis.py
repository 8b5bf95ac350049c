"""Costs of a run and its KPIs: $/PFLOP-day, $/kWh of compute energy, delivered ÷ installed,
the binding limit, and the terrestrial reference with the ratio (docs/models.md,
"Economics")."""

from __future__ import annotations

from typing import Any

from twin.economics.budget import (
    SECONDS_PER_YEAR,
    StaticEconomics,
    capex_usd_per_s,
    staff_usd_per_s,
)

J_PER_KWH = 3.6e6


def operating_cost_usd(static: StaticEconomics, duration_s: float,
                       contact_node_s: float) -> dict[str, float]:
    """The cost a run of ``duration_s`` carries: its share of the capex (linear over the
    mission life), staff, and ground-station time for ``contact_node_s`` node-seconds in
    contact."""
    p = static.params
    capex_share = capex_usd_per_s(static.capex, p) * duration_s
    staff = staff_usd_per_s(p) * duration_s
    stations = p.ground_station_usd_per_min * contact_node_s / 60.0
    return {"capex_share_usd": capex_share, "staff_usd": staff, "ground_station_usd": stations,
            "total_usd": capex_share + staff + stations}


def terrestrial_cost_usd(static: StaticEconomics, duration_s: float,
                         compute_energy_j: float) -> dict[str, float]:
    """A ground data center with the same accelerators and hosts doing the same work: the
    hardware over the same mission life, the facility (capex per MW of IT power) over its
    own life plus upkeep, and electricity for the compute energy × PUE."""
    p, t = static.params, static.params.terrestrial
    n = static.n_nodes
    hardware = n * (static.design.accelerators * p.accelerator_unit_usd + p.host_per_node_usd)
    facility = n * static.design.it_power_w / 1e6 * t.facility_capex_usd_per_mw
    hardware_share = hardware * duration_s / (p.mission_life_years * SECONDS_PER_YEAR)
    facility_share = facility * duration_s / (t.facility_life_years * SECONDS_PER_YEAR)
    upkeep = facility * t.maintenance_frac_per_year * duration_s / SECONDS_PER_YEAR
    energy = compute_energy_j * t.pue / J_PER_KWH * t.electricity_usd_per_kwh
    return {"hardware_share_usd": hardware_share, "facility_share_usd": facility_share,
            "upkeep_usd": upkeep, "electricity_usd": energy,
            "total_usd": hardware_share + facility_share + upkeep + energy}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0.0 else float("inf")


PHYSICAL_LIMITS = ("power", "thermal", "radiation", "downlink", "failures")
"""The limits of the fleet itself, as opposed to the demand put on it."""


def binding_limit(shortfall_accel_h: dict[str, float], among: tuple[str, ...] | None = None
                  ) -> str:
    """The limit that cost the most accelerator-hours over the run ("none" if nothing did),
    among ``among`` when given (``PHYSICAL_LIMITS``: the first limit of the fleet itself
    when demand binds)."""
    positive = {k: v for k, v in shortfall_accel_h.items() if v > 1e-9 and k != "none"
                and (among is None or k in among)}
    if not positive:
        return "none"
    return max(sorted(positive), key=lambda k: positive[k])


def kpis(static: StaticEconomics, books: dict[str, Any]) -> dict[str, Any]:
    """The KPIs of a run from its ledger's books (``RunLedger.books``)."""
    duration = books["duration_s"]
    cost = operating_cost_usd(static, duration, books["contact_node_min"] * 60.0)
    ground = terrestrial_cost_usd(static, duration, books["energy_compute_j"])
    pflop_days = books["pflop_days_useful"]
    usd_per_pflop_day = _ratio(cost["total_usd"], pflop_days)
    terrestrial_usd_per_pflop_day = _ratio(ground["total_usd"], pflop_days)
    node_h = static.n_nodes * duration / 3600.0
    violation_node_h = (books["soc_below_reserve_node_h"] + books["battery_temp_out_node_h"]
                        + books["thermal_throttled_node_h"])
    return {
        "usd_per_pflop_day": usd_per_pflop_day,
        "usd_per_compute_kwh": _ratio(cost["total_usd"], books["energy_compute_j"] / J_PER_KWH),
        "delivered_over_installed": _ratio(books["accel_h_delivered"],
                                           books["accel_h_installed"]),
        "binding_limit": binding_limit(books["accel_h_shortfall_by_limit"]),
        "binding_physical_limit": binding_limit(books["accel_h_shortfall_by_limit"],
                                                PHYSICAL_LIMITS),
        "terrestrial_usd_per_pflop_day": terrestrial_usd_per_pflop_day,
        "space_over_terrestrial": _ratio(usd_per_pflop_day, terrestrial_usd_per_pflop_day),
        "cost_usd": cost["total_usd"],
        "capex_usd": static.capex.total_usd,
        "node_wet_mass_kg": static.mass.wet_kg,
        "launch_usd_per_kg": static.params.launch_usd_per_kg,
        "pflop_days_useful": pflop_days,
        "violation_frac": _ratio(violation_node_h, node_h),
        "violation": bool(violation_node_h > 0.0),
    }
