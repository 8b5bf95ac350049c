"""The ledger a run keeps: energy, accelerator-hours, compute and results, step by step.

It reads the engine only through its public surface: the published fields by name
(``engine.fields``), the fleet totals (``engine.header()["fleet"]``) and ``meta``. A field
or total it does not find is left out (the lifecycle's totals, when that model is absent),
never an error. One vectorized pass over the nodes a step (docs/models.md, "Economics").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.economics.budget import StaticEconomics
from twin.models.power import PowerParams
from twin.scenario import parse_section

PFLOP = 1e15
DAY_S = 86400.0

LIMIT_WORDS: dict[str, str] = {
    "queue": "demand", "heat": "thermal", "power": "power", "radiation": "radiation",
    "fault": "failures", "storage": "downlink", "eclipse_ahead": "power", "none": "none",
}
"""Compute's ``limit_reason`` labels (meta.subsystems.compute.limit_reasons, first word) to
the binding limits the economics names; ``queue`` (no job to run) is the demand."""

LIFECYCLE_MODEL = "lifecycle"
LIFECYCLE_HINTS = ("installed", "reentr", "re_entr", "mass_in_orbit", "propellant",
                   "deorbit", "disposal", "battery_capacity", "array_health")
"""The lifecycle's totals (ageing, decay, disposal) are those its model (named
``lifecycle`` in the registry) declares, and any total whose name holds one of these:
recorded over time when a run publishes them, absent otherwise."""

SERIES_TOTALS = ("delivered_pflop_s", "accelerators_failed")


@dataclass
class Accumulators:
    """Running sums of a run; energies in J, accelerator time in accelerator-seconds."""

    duration_s: float = 0.0
    array_drawn_j: float = 0.0
    array_available_j: float = 0.0
    load_j: float = 0.0
    compute_j: float = 0.0
    charge_j: float = 0.0
    discharge_j: float = 0.0
    installed_as: float = 0.0
    available_as: float = 0.0
    busy_as: float = 0.0
    delivered_as: float = 0.0
    delivered_flop: float = 0.0
    contact_node_s: float = 0.0
    soc_low_node_s: float = 0.0
    battery_temp_node_s: float = 0.0
    throttled_node_s: float = 0.0
    alarm_node_s: float = 0.0
    soc_min: float = 1.0
    battery_max_k: float = 0.0
    junction_max_k: float = 0.0
    shortfall_as: np.ndarray = field(default_factory=lambda: np.zeros(16))


class RunLedger:
    """Keeps the books of one engine run. Call ``record(dt_s)`` after each ``engine.step()``.

    Args:
        engine: A built engine (twin.core.engine.Engine), at its start.
        static: The static economics of its scenario.
    """

    BATTERY_LOW_K = 273.15    # the battery's alarm levels (docs/models.md, "Limits")
    BATTERY_HIGH_K = 318.15

    def __init__(self, engine: Any, static: StaticEconomics) -> None:
        self.engine = engine
        self.static = static
        self.fields: dict[str, np.ndarray] = {f.spec.name: f.array for f in engine.fields}
        power = parse_section(PowerParams, engine.scenario, "power")
        self.eta_regulation = power.regulation_efficiency_frac
        self.eta_charge = power.charge_efficiency_frac
        self.eta_discharge = power.discharge_efficiency_frac
        self.soc_reserve = power.soc_reserve_frac
        self.capacity_j = power.battery_capacity_wh * 3600.0
        self.per_node = static.design.accelerators
        meta = engine.meta()
        reasons = meta["subsystems"].get("compute", {}).get("limit_reasons", {})
        self.reason_names = {int(code): LIMIT_WORDS.get(str(text).split(":")[0], "other")
                             for code, text in reasons.items()}
        declared = {k for entry in getattr(engine, "entries", ())
                    if entry.name == LIFECYCLE_MODEL for k in entry.totals}
        self.lifecycle_totals = sorted(k for k in meta["totals"]
                                       if k in declared or any(h in k for h in LIFECYCLE_HINTS))
        self.lifecycle_seen: set[str] = set()
        self.acc = Accumulators()
        self.start_totals = dict(engine.header()["fleet"])
        self.start_chemical_j = self._chemical_j()
        self.series: list[dict[str, float]] = []
        self.sample(0.0)

    def _field(self, name: str) -> np.ndarray | None:
        return self.fields.get(name)

    def _chemical_j(self) -> float:
        soc = self._field("soc_frac")
        if soc is None:
            return 0.0
        health = self._field("battery_health_frac")
        scale = health if health is not None else 1.0
        return float(np.sum(soc.astype(np.float64) * scale)) * self.capacity_j

    def record(self, dt_s: float) -> None:
        """Add one step of ``dt_s`` seconds ending now."""
        a, get = self.acc, self._field
        a.duration_s += dt_s
        n_nodes = self.static.n_nodes
        load, battery = get("p_load_w"), get("p_battery_w")
        if load is not None and battery is not None:
            load64, batt64 = load.astype(np.float64), battery.astype(np.float64)
            a.load_j += float(load64.sum()) * dt_s
            a.charge_j += float(np.clip(batt64, 0.0, None).sum()) * dt_s
            a.discharge_j += float(np.clip(-batt64, 0.0, None).sum()) * dt_s
            # The arrays feed what the battery does not (in eclipse the battery carries the
            # whole load: load + battery = 0), plus its charge, through the regulator.
            drawn = np.clip(load64 + batt64, 0.0, None)
            a.array_drawn_j += float(drawn.sum()) / self.eta_regulation * dt_s
        solar = get("p_solar_w")
        if solar is not None:
            a.array_available_j += float(solar.sum(dtype=np.float64)) * dt_s
        compute_w = get("compute_power_w")
        if compute_w is not None:
            a.compute_j += float(compute_w.sum(dtype=np.float64)) * dt_s
        installed = np.full(n_nodes, float(self.per_node))
        a.installed_as += installed.sum() * dt_s
        ok = get("accelerators_ok")
        a.available_as += (float(ok.sum(dtype=np.int64)) if ok is not None
                           else installed.sum()) * dt_s
        busy = get("accelerators_busy")
        if busy is not None:
            a.busy_as += float(busy.sum(dtype=np.int64)) * dt_s
        flop = get("delivered_flop_s")
        if flop is not None:
            flop64 = flop.astype(np.float64)
            a.delivered_flop += float(flop64.sum()) * dt_s
            equivalent = flop64 / self.static.peak_flop_s_per_accelerator
            a.delivered_as += float(equivalent.sum()) * dt_s
            reason = get("limit_reason")
            if reason is not None:
                a.shortfall_as += np.bincount(reason, weights=installed - equivalent,
                                              minlength=16)[:16] * dt_s
        contact = get("in_contact")
        if contact is not None and contact.ndim == 2:
            a.contact_node_s += float(np.count_nonzero(contact.any(axis=0))) * dt_s
        self._record_risk(dt_s)

    def _record_risk(self, dt_s: float) -> None:
        a, get = self.acc, self._field
        soc = get("soc_frac")
        if soc is not None:
            a.soc_min = min(a.soc_min, float(soc.min()))
            a.soc_low_node_s += np.count_nonzero(soc < self.soc_reserve) * dt_s
        temp = get("temp_battery_k")
        if temp is not None:
            a.battery_max_k = max(a.battery_max_k, float(temp.max()))
            out = (temp < self.BATTERY_LOW_K) | (temp > self.BATTERY_HIGH_K)
            a.battery_temp_node_s += np.count_nonzero(out) * dt_s
        junction = get("temp_junction_k")
        if junction is not None:
            a.junction_max_k = max(a.junction_max_k, float(junction.max()))
        throttle = get("throttle_code")
        if throttle is not None:
            a.throttled_node_s += np.count_nonzero(throttle == 1) * dt_s
        level = get("limit_level")
        if level is not None:
            a.alarm_node_s += np.count_nonzero(level == 2) * dt_s

    def sample(self, t_s: float) -> dict[str, float]:
        """One row of the time series at ``t_s`` since the start (totals read now)."""
        fleet = self.engine.header()["fleet"]
        row = {"t_s": t_s}
        ok = self._field("accelerators_ok")
        if ok is not None:  # compute's peak_pflop_s counts installed, not working, ones
            row["working_pflop_s"] = (float(ok.sum(dtype=np.int64))
                                      * self.static.peak_flop_s_per_accelerator / PFLOP)
        for key in SERIES_TOTALS:
            if key in fleet:
                row[key] = float(fleet[key])
        for key in self.lifecycle_totals:  # published only while the model is on
            if key in fleet:
                row[key] = float(fleet[key])
                self.lifecycle_seen.add(key)
        row["useful_pflop_days"] = self._useful_pflop_days(fleet)
        row["contact_node_s"] = self.acc.contact_node_s
        row["cost_usd"] = self._cost_usd(t_s, self.acc.contact_node_s)
        self.series.append(row)
        return row

    def _useful_pflop_days(self, fleet: Mapping[str, float]) -> float:
        useful_h = fleet.get("useful_work_accel_h", 0.0) - self.start_totals.get(
            "useful_work_accel_h", 0.0)
        return useful_h * 3600.0 * self.static.peak_flop_s_per_accelerator / PFLOP / DAY_S

    def _cost_usd(self, duration_s: float, contact_node_s: float) -> float:
        from twin.economics.kpis import operating_cost_usd

        return operating_cost_usd(self.static, duration_s, contact_node_s)["total_usd"]

    def books(self) -> dict[str, Any]:
        """The ledger's totals, in their units (J, s, accelerator-h, PFLOP-days, $)."""
        a = self.acc
        fleet = self.engine.header()["fleet"]
        delta = {k: float(fleet.get(k, 0.0)) - float(self.start_totals.get(k, 0.0))
                 for k in ("useful_work_accel_h", "lost_work_accel_h", "results_delivered",
                           "results_delivered_bytes", "compute_energy_j")}
        chemical_change_j = self._chemical_j() - self.start_chemical_j
        battery_losses_j = ((1.0 - self.eta_charge) * a.charge_j
                            + (1.0 / self.eta_discharge - 1.0) * a.discharge_j)
        regulation_loss_j = (1.0 - self.eta_regulation) * a.array_drawn_j
        shortfall = {}
        for code, value in enumerate(a.shortfall_as):
            if value and code in self.reason_names:
                name = self.reason_names[code]
                shortfall[name] = shortfall.get(name, 0.0) + value / 3600.0
            elif value and code:
                shortfall["other"] = shortfall.get("other", 0.0) + value / 3600.0
        return {
            "duration_s": a.duration_s,
            "energy_available_j": a.array_available_j,
            "energy_generated_j": a.array_drawn_j,
            "energy_used_j": a.load_j,
            "energy_compute_j": a.compute_j,
            "battery_charge_j": a.charge_j,
            "battery_discharge_j": a.discharge_j,
            "battery_chemical_change_j": chemical_change_j,
            "battery_losses_j": battery_losses_j,
            "regulation_loss_j": regulation_loss_j,
            "accel_h_installed": a.installed_as / 3600.0,
            "accel_h_available": a.available_as / 3600.0,
            "accel_h_busy": a.busy_as / 3600.0,
            "accel_h_delivered": a.delivered_as / 3600.0,
            "accel_h_shortfall_by_limit": shortfall,
            "accel_h_useful": delta["useful_work_accel_h"],
            "accel_h_lost": delta["lost_work_accel_h"],
            "pflop_days_delivered": a.delivered_flop / PFLOP / DAY_S,
            "pflop_days_useful": self._useful_pflop_days(fleet),
            "compute_energy_total_j": delta["compute_energy_j"],
            "results_downlinked": delta["results_delivered"],
            "results_downlinked_bytes": delta["results_delivered_bytes"],
            "contact_node_min": a.contact_node_s / 60.0,
            "soc_min_frac": a.soc_min,
            "battery_max_k": a.battery_max_k,
            "junction_max_k": a.junction_max_k,
            "soc_below_reserve_node_h": a.soc_low_node_s / 3600.0,
            "battery_temp_out_node_h": a.battery_temp_node_s / 3600.0,
            "thermal_throttled_node_h": a.throttled_node_s / 3600.0,
            "alarm_node_h": a.alarm_node_s / 3600.0,
            "lifecycle_totals": sorted(self.lifecycle_seen),
        }
