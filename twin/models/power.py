"""Electrical power of every node: solar arrays, battery, heaters, loads and the power cap.

Per step and per satellite, all numpy: array output from the Sun's flux, the attitude law's
incidence, the step's mean sunlit fraction, degradation and the array's quasi-steady
temperature; loads (bus, battery heater, compute cold-plate heater, compute); the battery
takes the surplus or covers the deficit with its charge and discharge efficiencies. As the
state of charge nears its reserve the node caps compute power (``power_cap_w``, read by
compute on the next step) and says so with an event. Equations and sizing: docs/models.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.astro.attitude import sun_exposure
from twin.core.constants import J_PER_WH, STEFAN_BOLTZMANN_W_M2_K4
from twin.core.interfaces import (
    BATTERY,
    COMPUTE,
    RADIATOR,
    DriverOutputs,
    PowerOutputs,
    ThermalOutputs,
)
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.environment import SOLAR_CONSTANT_W_M2, SunlitStep
from twin.models.faults import degraded_frac
from twin.models.ledger import EnergyLedger
from twin.models.thermal import ThermalParams
from twin.scenario import InvalidField, Scenario, parse_section

# Rows of the step's float64 block: the four published fields first, then the balance's
# (``PowerModel._balance``), then the ledger's scratch.
# The rows from ``served`` to ``loss`` are the nodes' internal heat that thermal takes
# (``internal_heat_w``): into the compute node, the bus (its loads and the regulation loss)
# and the battery (its losses), while every heater is off.
_ROWS = ("p_avail", "soc", "load", "flow", "served", "bus_internal", "loss", "d_soc", "used",
         "dissipated")
P_AVAIL, SOC, LOAD, FLOW, SERVED, BUS_INTERNAL, LOSS, D_SOC, USED, DISSIPATED = range(
    len(_ROWS))


# At most this many per-node alarms for one step's non-finite states; the rest are summed.
MAX_GUARD_EVENTS = 10


def _m(unit: str, **bounds: float) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class PowerParams:
    """The ``[power]`` table. Defaults are the design point sized in docs/models.md."""

    array_area_m2: float = field(default=40.0, metadata=_m("m2", min=0.0, max=1.0e5))
    cell_efficiency_frac: float = field(default=0.30, metadata=_m("1", min=0.0, max=1.0))
    packing_frac: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    array_pointing_loss_frac: float = field(default=0.01, metadata=_m("1", min=0.0, max=1.0))
    array_degradation_frac: float = field(default=0.05, metadata=_m("1", min=0.0, max=1.0))
    array_temp_coeff_per_k: float = field(default=-0.0022, metadata=_m("1/K", min=-0.02,
                                                                       max=0.0))
    array_ref_temp_k: float = field(default=301.15, metadata=_m("K", min=0.0, max=500.0))
    array_absorptivity: float = field(default=0.91, metadata=_m("1", min=0.0, max=1.0))
    array_emissivity_front: float = field(default=0.85, metadata=_m("1", gt=0.0, max=1.0))
    array_emissivity_back: float = field(default=0.85, metadata=_m("1", min=0.0, max=1.0))
    # At least 0.5: no regulator or cell is worse, and near 0 the losses (1/η) overflow.
    regulation_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    battery_capacity_wh: float = field(default=12_000.0, metadata=_m("Wh", min=0.0, max=1.0e8))
    charge_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    discharge_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    max_charge_w: float = field(default=6_000.0, metadata=_m("W", min=0.0))
    max_discharge_w: float = field(default=12_000.0, metadata=_m("W", min=0.0))
    soc_initial_frac: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    soc_max_frac: float = field(default=0.90, metadata=_m("1", gt=0.0, max=1.0))
    soc_reserve_frac: float = field(default=0.20, metadata=_m("1", min=0.0, max=1.0))
    cap_release_band_frac: float = field(default=0.05, metadata=_m("1", gt=0.0, max=1.0))
    recharge_reserve_w: float = field(default=600.0, metadata=_m("W", min=0.0))
    bus_power_w: float = field(default=1_000.0, metadata=_m("W", min=0.0, max=1.0e7))
    compute_load_w: float = field(default=5_600.0, metadata=_m("W", min=0.0, max=1.0e8))
    heater_power_w: float = field(default=150.0, metadata=_m("W", min=0.0, max=1.0e6))
    heater_on_k: float = field(default=280.15, metadata=_m("K", min=0.0, max=400.0))
    heater_off_k: float = field(default=284.15, metadata=_m("K", min=0.0, max=400.0))
    loop_heater_power_w: float = field(default=500.0, metadata=_m("W", min=0.0, max=1.0e6))
    loop_heater_on_k: float = field(default=283.15, metadata=_m("K", min=0.0, max=400.0))
    loop_heater_off_k: float = field(default=288.15, metadata=_m("K", min=0.0, max=400.0))
    freeze_guard_on_k: float = field(default=207.15, metadata=_m("K", min=0.0, max=400.0))
    freeze_guard_off_k: float = field(default=211.15, metadata=_m("K", min=0.0, max=400.0))

    def __post_init__(self) -> None:
        if self.soc_reserve_frac >= self.soc_max_frac:
            raise InvalidField("soc_reserve_frac", f"{self.soc_reserve_frac:g} must be below"
                               f" soc_max_frac ({self.soc_max_frac:g})")
        if self.soc_initial_frac > self.soc_max_frac:
            raise InvalidField("soc_initial_frac", f"{self.soc_initial_frac:g} must not exceed"
                               f" soc_max_frac ({self.soc_max_frac:g})")
        if self.array_absorptivity < self.cell_efficiency_frac:
            # The array turns into electricity part of what it absorbs: it cannot deliver
            # more than it absorbs (and its energy balance would go negative).
            raise InvalidField("array_absorptivity", f"{self.array_absorptivity:g} must be at"
                               f" least cell_efficiency_frac ({self.cell_efficiency_frac:g}):"
                               " a cell cannot convert more sunlight than it absorbs")
        for on, off in (("heater_on_k", "heater_off_k"),
                        ("loop_heater_on_k", "loop_heater_off_k"),
                        ("freeze_guard_on_k", "freeze_guard_off_k")):
            if getattr(self, off) <= getattr(self, on):
                raise InvalidField(off, f"{getattr(self, off):g} K must be above {on}"
                                   f" ({getattr(self, on):g} K): that gap is the"
                                   " thermostat's hysteresis")

    @property
    def array_efficiency_ref_frac(self) -> float:
        """End-to-end array efficiency at the reference temperature, before pointing cosine."""
        return (self.cell_efficiency_frac * self.packing_frac
                * (1.0 - self.array_pointing_loss_frac) * (1.0 - self.array_degradation_frac))


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "p_solar_total_w": ("W", "solar array output"),
    "p_load_total_w": ("W", "electrical load served"),
    "soc_min_frac": ("1", "lowest battery state of charge"),
    "soc_mean_frac": ("1", "mean battery state of charge"),
    "n_power_capped": ("count", "nodes under a power cap"),
    "n_heaters_on": ("count", "battery heaters on"),
    "n_loop_heaters_on": ("count", "coolant-loop heaters on"),
    "loop_heater_total_w": ("W", "coolant-loop heater power"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class PowerModel:
    """Generation, storage and loads of every node, updated in place each step.

    Reads (twin.core.interfaces): ``beta_deg`` from orbit; the step's sunlight, solar flux
    and Earth view from the environment; ``solar_health_frac``, ``battery_health_frac``
    from faults; ``compute_power_w`` from compute (before compute's first step, a fixed
    load); measured bus and heater power of live mirrored nodes from the mirror's drivers;
    the four temperatures from thermal (previous step, for the heaters). Publishes
    ``power_cap_w``, ``soc_frac``, ``p_solar_w``, the served heater and bus power and the
    heat that thermal needs (``payload_power_w``, ``battery_loss_w``,
    ``regulation_loss_w``, ``internal_heat_w``) and ``settle_heaters_w``, the heaters' part
    of thermal's starting state.

    Args:
        n_sats: Number of satellites.
        params: The ``[power]`` parameters.
        thermal: The ``[thermal]`` parameters (attitude law, Earth IR for the arrays).
        sat_names: Names for event messages.
    """

    name = "power"
    reads: tuple[str, ...] = ("orbit", "faults", "drivers", "compute", "environment",
                              "thermal")
    publishes = "power"

    def __init__(self, n_sats: int, params: PowerParams | None = None,
                 thermal: ThermalParams | None = None,
                 sat_names: list[str] | None = None) -> None:
        self.params = p = params or PowerParams()
        self.thermal = thermal or ThermalParams()
        self.n_sats = n = n_sats
        self.sat_names = sat_names or [f"sat {i}" for i in range(n)]
        f = make_field
        self.p_solar = f("p_solar_w", "<f4", (n,), "W",
                         "Solar array output available at maximum power point")
        self.p_load = f("p_load_w", "<f4", (n,), "W",
                        "Electrical load: bus + heaters + compute")
        self.p_battery = f("p_battery_w", "<f4", (n,), "W",
                           "Battery terminal power: + charging, - discharging")
        self.soc = f("soc_frac", "<f4", (n,), "1", "Battery state of charge",
                     limits={"warn_low": p.soc_reserve_frac + 0.10,
                             "alarm_low": p.soc_reserve_frac})
        # Those four are rows of one float32 block, and their float64 sources the first
        # rows of another (see _ROWS): one copy publishes them. The step's balance fills
        # the block's rows from LOAD on, so a shadow crossing rewrites them in one pass.
        self._fields_f4 = np.zeros((4, n), dtype=np.float32)
        self._rows = np.zeros((len(_ROWS), n))
        for row, fld in zip((P_AVAIL, SOC, LOAD, FLOW), (self.p_solar, self.soc, self.p_load,
                                                          self.p_battery), strict=True):
            self._fields_f4[row] = fld.array
            fld.array = self._fields_f4[row]
        self.cap = f("power_cap_w", "<f4", (n,), "W",
                     "Cap on compute power, +inf when none", fill=np.inf)
        self.heater = f("heater_power_w", "<f4", (n,), "W", "Battery heater power")
        self.loop_heater = f("loop_heater_power_w", "<f4", (n,), "W",
                             "Compute cold-plate (coolant loop) heater power")
        self.temp_array = f("temp_array_k", "<f4", (n,), "K",
                            "Solar array (quasi-steady)")
        self.soc_state = self._rows[SOC]  # float64 state
        self.soc_state[:] = p.soc_initial_frac
        self._soc_before = self.soc_state.copy()  # the last good state, for the guard below
        self.non_finite_steps = 0  # satellite-steps whose state was kept (non-finite result)
        self.heater_on = np.zeros(n, dtype=bool)
        self.loop_heater_on = np.zeros(n, dtype=bool)
        self._n_heaters_on = self._n_loop_on = 0  # counts of the two
        self._heaters_changed = False  # whether the heater fields need rewriting
        self.settle_cycling = np.zeros(0, dtype=np.intp)  # see settle_heaters_w
        # Heater and bus power, W, rewritten only when a thermostat changes.
        self._heater_w = np.zeros(n)
        self._loop_w = np.zeros(n)
        self._bus_w = np.full(n, p.bus_power_w)
        self.capped = np.zeros(n, dtype=bool)
        self._n_capped = 0  # satellites capped (count of ``capped``)
        # The last step's sums of p_solar, soc and p_load and its smallest soc, for fleet().
        self._fleet_sums: tuple[float, float, float, float] | None = None
        self._cap_w = np.full(n, np.inf)
        self._cap_changed = False  # whether the cap field needs rewriting
        self._env = {"beta": np.zeros(n)}
        self.outputs = PowerOutputs(settle_heaters_w=self.settle_heaters_w)
        # Electrical ledger since start, J: generated = dissipated + stored (chemical), and
        # the load energy not served.
        self._ledger = EnergyLedger(3, n)
        # Scratch, (n,) float64 unless said: rewritten every step, never kept across one.
        self._payload = np.empty(n)
        self._supply = np.empty(n)
        self._reg_loss = np.empty(n)
        self._temp = np.empty(n)
        self._eta = np.empty(n)
        self._eta_ref = p.array_efficiency_ref_frac  # params are frozen
        # The balance's per-row constants (see _balance_numbers), (2, 1) each: the
        # [charge, -discharge] limits per J of capacity per unit of state of charge per s,
        # their scale for the last (capacity, dt) (W per unit of state of charge), their
        # clip bounds (W), and the [loss, storage] factors of the terminal flow.
        self._limit_per_j = np.array([[1.0 / p.charge_efficiency_frac],
                                      [-p.discharge_efficiency_frac]])
        self._limit_scale_key: tuple[float, float] | None = None
        self._limit_scale_rows = np.zeros((2, 1))
        self._limit_floor = np.array([[0.0], [-p.max_discharge_w]])
        self._limit_ceiling = np.array([[p.max_charge_w], [0.0]])
        self._charge_factors = np.array([[1.0 - p.charge_efficiency_frac],
                                         [p.charge_efficiency_frac]])
        self._discharge_change = np.array([[p.charge_efficiency_frac
                                            - 1.0 / p.discharge_efficiency_frac],
                                           [1.0 / p.discharge_efficiency_frac
                                            - p.charge_efficiency_frac]])

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> PowerModel:
        return cls(len(scenario.satellites), parse_section(PowerParams, scenario, "power"),
                   parse_section(ThermalParams, scenario, "thermal"),
                   [s.name for s in scenario.satellites])

    # ---- contract

    def fields(self) -> list[Field]:
        return [self.p_solar, self.p_load, self.p_battery, self.soc, self.cap, self.heater,
                self.loop_heater, self.temp_array]

    def _drop_infinite_demand(self, ctx: StepContext, payload: np.ndarray) -> None:
        """An infinite compute demand is no load to balance: count it as none, and say so."""
        bad = np.flatnonzero(~np.isfinite(payload))
        payload[bad] = 0.0
        self.non_finite_steps += len(bad)
        for sat in bad[:MAX_GUARD_EVENTS]:
            ctx.events.raise_event(
                "input_not_finite", "alarm", f"power: node {int(sat)}'s compute power demand "
                "is not finite; balanced as no load this step", sat=int(sat),
                field="compute_power_w", model="power")

    def _keep_last_good_state(self, ctx: StepContext, rows: np.ndarray,
                              unserved: tuple[Any, Any]) -> None:
        """A non-finite state of charge never stays: the node keeps its last good state.

        An absurd input (a measured load of 1e308 W) would otherwise leave NaN in the
        battery for ever and in every fleet total. The node's flows this step count as
        zero, and an alarm names it.
        """
        soc = self.soc_state
        bad = np.flatnonzero(~np.isfinite(soc))
        soc[bad] = self._soc_before[bad]
        rows[LOAD:, bad] = 0.0
        for array in unserved:
            if isinstance(array, np.ndarray):
                array[bad] = 0.0
        self.non_finite_steps += len(bad)
        for sat in bad[:MAX_GUARD_EVENTS]:
            ctx.events.raise_event(
                "state_not_finite", "alarm", f"power: node {int(sat)}'s state of charge "
                "became non-finite (an absurd input); kept its last good value",
                sat=int(sat), field="soc_frac", model="power")
        if len(bad) > MAX_GUARD_EVENTS:
            ctx.events.raise_event(
                "state_not_finite", "alarm", f"power: {len(bad) - MAX_GUARD_EVENTS} more "
                "nodes' state of charge kept at their last good value", field="soc_frac",
                model="power", n_sats=int(len(bad) - MAX_GUARD_EVENTS))

    def step(self, ctx: StepContext) -> None:
        p = self.params
        dt = max(float(ctx.dt_s), 0.0)
        rows = self._rows
        # Array output per unit of visible Sun, and the step's mean visible fraction.
        unit_w, sun = self._array_power_per_sunlit_w(ctx)
        p_avail = np.multiply(unit_w, sun.mean, out=rows[P_AVAIL])

        # Heaters: thermostats on the previous step's temperatures.
        self._thermostats(ctx.thermal)
        bus, heater, loop_heater = self._bus_w, self._heater_w, self._loop_w
        # Measured bus and battery heater power of live mirrored nodes replace the model's.
        drivers = ctx.drivers
        if drivers.mirror_sat.size:
            bus, heater = self._with_measured(drivers, bus, heater)
        demand = ctx.compute.compute_power_w
        payload = self._payload
        if demand is None:  # no compute model yet: a fixed load that obeys the cap
            np.minimum(p.compute_load_w, self._cap_w, out=payload)
        else:  # a float32 demand is widened first: a mixed-type fmax costs three passes
            np.copyto(payload, demand)
            np.fmax(payload, 0.0, out=payload)  # NaN -> 0
            if not math.isfinite(float(np.add.reduce(payload))):  # +inf: an absurd input
                self._drop_infinite_demand(ctx, payload)
        if bus is self._bus_w and not (self._n_heaters_on or self._n_loop_on):
            base: float | np.ndarray = p.bus_power_w  # every heater off: the bus alone
        else:
            base = bus + heater + loop_heater

        health = degraded_frac(ctx.faults.battery_health_frac)
        capacity_j: float | np.ndarray = p.battery_capacity_wh * J_PER_WH
        if health is not None:
            capacity_j = capacity_j * health
        eta_r = p.regulation_efficiency_frac
        soc = self.soc_state
        np.copyto(self._soc_before, soc)
        supply = np.multiply(p_avail, eta_r, out=self._supply)
        if dt > 0.0 and isinstance(capacity_j, float) and capacity_j > 0.0:  # the usual case
            unserved = self._balance_numbers(supply, base, payload, soc, capacity_j, dt,
                                             rows[LOAD:DISSIPATED], True)
        else:
            unserved = self._balance(supply, base, payload, soc, capacity_j, dt,
                                     rows[LOAD:DISSIPATED])
        # A step that crosses the shadow edge is two segments, sunlit then dark (or the
        # reverse): a full battery cannot bank the sunlit part's surplus for the dark part.
        if sun.crossed.size and dt > 0.0:
            unserved = self._split_at_shadow_edge(unit_w, sun, base, payload, capacity_j, dt,
                                                  unserved)
        soc += rows[D_SOC]
        if not math.isfinite(float(np.add.reduce(soc))):
            self._keep_last_good_state(ctx, rows, unserved)
        load, used, batt_loss = rows[LOAD], rows[USED], rows[LOSS]
        reg_loss = np.multiply(used, 1.0 - eta_r, out=self._reg_loss)
        if dt > 0.0:
            # Ledger rows [array, dissipated] += [used, load + losses] dt (``used`` and
            # ``dissipated`` are adjacent rows).
            spent = rows[USED:DISSIPATED + 1]
            np.add(load, reg_loss, out=spent[1])
            spent[1] += batt_loss
            self._ledger.add(spent, dt)
            if unserved[0] is not None:  # rare
                self._ledger.joules()[2] += unserved[0] * dt

        # Nothing capped and nothing can engage (the usual case): the cap stays +inf. (NaN
        # fails the tests: the careful path.)
        soc_min = float(np.minimum.reduce(soc))
        if self._n_capped or not soc_min > p.soc_reserve_frac or not (
                capacity_j > 0.0 if isinstance(capacity_j, float)
                else np.minimum.reduce(capacity_j) > 0.0):
            self._update_cap(ctx, supply, base, payload, capacity_j)

        # p_solar, soc, p_load and p_battery are the block's first rows: one float32 copy.
        np.copyto(self._fields_f4, rows[:4], casting="same_kind")
        # The fleet's totals while the rows are at hand: one pass sums p_solar, soc and p_load.
        self._fleet_sums = (*np.add.reduce(rows[:3], axis=1).tolist(), soc_min)
        if self._cap_changed:
            self.cap.array[:] = self._cap_w
            self._cap_changed = False
        if self._heaters_changed or heater is not self._heater_w:
            self.heater.array[:] = heater
            self.loop_heater.array[:] = loop_heater
            self._heaters_changed = heater is not self._heater_w
        # Unserved bus and heater power is not dissipated either: the bus browns out first,
        # then the battery heater, then the loop heater.
        bus_served, heater_served, loop_served = bus, heater, loop_heater
        short = unserved[1]
        if short is not None and short.any():  # rare: the battery is empty, the arrays short
            bus_served = bus - np.minimum(short, bus)
            short = np.maximum(short - bus, 0.0)
            heater_served = heater - np.minimum(short, heater)
            loop_served = loop_heater - np.maximum(short - heater, 0.0)
        # Thermal's internal heat in one block while no heater runs: [compute, bus, battery].
        internal = None
        if heater is self._heater_w and not (self._n_heaters_on or self._n_loop_on):
            np.add(reg_loss, p.bus_power_w if bus_served is self._bus_w else bus_served,
                   out=rows[BUS_INTERNAL])
            internal = rows[SERVED:LOSS + 1]
        out = self.outputs
        out.internal_heat_w = internal
        out.power_cap_w, out.soc_frac, out.p_solar_w = (self.cap.array, self.soc.array,
                                                        self.p_solar.array)
        out.heater_power_w, out.loop_heater_power_w = heater_served, loop_served
        out.bus_power_w, out.payload_power_w = bus_served, rows[SERVED]
        out.battery_loss_w, out.regulation_loss_w = batt_loss, reg_loss

    def _split_at_shadow_edge(self, unit_w: np.ndarray, sun: SunlitStep,
                              base: float | np.ndarray, payload: np.ndarray,
                              capacity_j: float | np.ndarray, dt: float,
                              unserved: tuple[np.ndarray | None, np.ndarray | None]
                              ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Redo the balance of the few satellites that crossed the shadow edge in the step
        as two segments and write their step means into the balance rows in place.

        Returns:
            ``unserved`` (all, base loads; (n,) W or None) with the crossings' step means.
        """
        cross, weight = sun.crossed, sun.weights
        base_x = base if isinstance(base, float) else base[cross]
        cap_x = capacity_j if isinstance(capacity_j, float) else capacity_j[cross]
        payload_x = payload[cross]
        # Each segment's (rows) supply after regulation, W, and duration, s, (2, m).
        supply = unit_w[cross]
        supply *= self.params.regulation_efficiency_frac
        supply = supply * sun.crossed_ends
        seconds = weight * dt
        segments = np.zeros((2, DISSIPATED - LOAD, cross.size))  # (bus_internal: unused)
        first, second = segments
        soc = self.soc_state[cross]
        if isinstance(cap_x, float) and cap_x > 0.0 and np.minimum.reduce(
                seconds, axis=None) > 0.0:  # the usual case: ``_balance``'s timed branch
            # Both segments' per-interval factors in one pass each: the limits' scale
            # [1 / η_c, -η_d] capacity / dt, (segment, 2, m), and dt / capacity, (2, m).
            scales = np.divide(cap_x, seconds)
            scales = np.multiply(self._limit_per_j, scales[:, None, :])
            per_j = np.divide(seconds, cap_x)
            short_1 = self._balance_numbers(supply[0], base_x, payload_x, soc, cap_x,
                                            seconds[0], first, True, scales[0], per_j[0])
            soc += first[D_SOC - LOAD]
            short_2 = self._balance_numbers(supply[1], base_x, payload_x, soc, cap_x,
                                            seconds[1], second, True, scales[1], per_j[1])
        else:
            short_1 = self._balance(supply[0], base_x, payload_x, soc, cap_x, seconds[0], first)
            soc += first[D_SOC - LOAD]
            short_2 = self._balance(supply[1], base_x, payload_x, soc, cap_x, seconds[1],
                                    second)
        # Step means of the powers; the state of charge changes by both segments' sum.
        d_soc = first[D_SOC - LOAD] + second[D_SOC - LOAD]
        segments *= weight[:, None, :]
        first += second
        first[D_SOC - LOAD] = d_soc
        self._rows[LOAD:DISSIPATED, cross] = first
        merged = []
        for whole, one, two in zip(unserved, short_1, short_2, strict=True):
            if whole is None and (one is not None or two is not None):
                whole = np.zeros(self.n_sats)
            if whole is not None:
                whole[cross] = weight[0] * _or_zero(one) + weight[1] * _or_zero(two)
            merged.append(whole)
        return merged[0], merged[1]

    def _balance(self, supply: np.ndarray, base: float | np.ndarray, payload: np.ndarray,
                 soc: np.ndarray, capacity_j: float | np.ndarray, dt: float | np.ndarray,
                 out: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Share supply among loads and battery over an interval; all (m,), W, J, s.

        The arrays feed the loads first; a surplus charges the battery (up to its charge
        limit and ``soc_max_frac``), a deficit discharges it (down to empty and its discharge
        limit). What neither can give is not drawn: compute is shed first, then the bus.
        The battery's terminal power is the net clipped between the discharge and charge
        limits; the rest of the arithmetic follows from its sign (one of charge and
        discharge is always zero).

        Args:
            out: (7, m) filled in place with the interval's mean powers, W, and the change
                of state of charge, in the order of ``_ROWS`` from ``load``: load, battery
                terminal flow (+ charging), compute served, (bus_internal: not touched),
                battery loss, d_soc (the change of state of charge), array power used before
                regulation.

        Returns:
            Power not served, in all and of the base loads (bus and heaters), (m,) W each,
            or None when nothing is unserved.
        """
        shortest = dt if isinstance(dt, float) else np.minimum.reduce(dt, axis=None)
        if shortest > 0.0 and (capacity_j > 0.0 if isinstance(capacity_j, float)
                               else np.minimum.reduce(capacity_j, axis=None) > 0.0):
            return self._balance_numbers(supply, base, payload, soc, capacity_j, dt, out, True)
        timed = dt > 0.0 if isinstance(dt, float) else np.maximum.reduce(dt, axis=None) > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero interval or capacity
            return self._balance_numbers(supply, base, payload, soc, capacity_j, dt, out,
                                         bool(timed))

    def _balance_numbers(self, supply: np.ndarray, base: float | np.ndarray,
                         payload: np.ndarray, soc: np.ndarray, capacity_j: float | np.ndarray,
                         dt: float | np.ndarray, out: np.ndarray, timed: bool,
                         scale: np.ndarray | None = None, soc_per_w: np.ndarray | None = None
                         ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``_balance``'s arithmetic, without its floating-point error state; ``timed``:
        whether any interval is longer than zero (else the epoch's flows). ``scale`` (2, m)
        and ``soc_per_w`` (m,), when given, are the limits' factors ``_limit_per_j``
        capacity / dt and dt / capacity of an array ``dt`` and a number ``capacity_j`` > 0,
        computed by the caller for several intervals at once.

        The rows of ``out`` hold scratch before their own values: the net power in ``used``,
        the charge and (negated) discharge limits in ``loss`` and ``d_soc`` (adjacent, so
        one pass clips both), the flow's negative part in ``served``.
        """
        p = self.params
        load, flow, served, _, _, d_soc, used = out
        limits = out[LOSS - LOAD:D_SOC - LOAD + 1]
        hi, lo = limits
        np.add(payload, base, out=load)
        net = np.subtract(supply, load, out=used)
        if timed:
            # Charge limit: room to soc_max_frac over the interval; discharge limit, negated:
            # the charge left over the interval. Then the rate limits.
            np.subtract(p.soc_max_frac, soc, out=hi)
            np.copyto(lo, soc)
            if isinstance(capacity_j, float) and isinstance(dt, float):
                if self._limit_scale_key != (capacity_j, dt):  # kept while both stay
                    self._limit_scale_key = (capacity_j, dt)
                    self._limit_scale_rows = self._limit_per_j * (capacity_j / dt)
                limits *= self._limit_scale_rows
            elif scale is not None:
                limits *= scale
            else:  # [1 / η_c, -η_d] capacity / dt, (2, m)
                limits *= np.multiply(self._limit_per_j, np.divide(capacity_j, dt))
            np.maximum(limits, self._limit_floor, out=limits)
            np.minimum(limits, self._limit_ceiling, out=limits)
        else:  # the epoch: show the flows, change nothing
            hi[...] = 0.0
            lo[...] = np.where(np.greater(capacity_j, 0.0), -p.max_discharge_w, 0.0)
        np.maximum(net, lo, out=flow)
        np.minimum(flow, hi, out=flow)
        unserved = unserved_base = shed = None
        if np.count_nonzero(np.less(net, lo)):  # rare: a deficit the battery cannot give
            unserved = np.maximum(flow - net, 0.0)
            shed = np.minimum(unserved, payload)
            unserved_base = unserved - shed
            load -= unserved
        np.add(load, flow, out=used)
        used /= p.regulation_efficiency_frac
        # Battery loss and the power into storage per watt at the terminals, by the flow's
        # sign: charging 1 - η_c and η_c, discharging 1 - 1/η_d and 1/η_d. A masked multiply
        # or a ``where`` costs several plain passes: both rows take the charging factor,
        # then the discharge's difference on the flow's negative part.
        negative = np.minimum(flow, 0.0, out=served)
        into = out[LOSS - LOAD:D_SOC - LOAD + 1]  # [loss, d_soc]
        np.multiply(flow, self._charge_factors, out=into)
        into += negative * self._discharge_change
        if isinstance(capacity_j, float):
            if capacity_j > 0.0:
                d_soc *= dt / capacity_j if soc_per_w is None else soc_per_w
            else:
                d_soc[...] = 0.0
        else:
            d_soc *= dt
            d_soc /= capacity_j
            np.putmask(d_soc, np.less_equal(capacity_j, 0.0), 0.0)
        if shed is None:
            np.copyto(served, payload)
        else:
            np.subtract(payload, shed, out=served)
        return unserved, unserved_base

    def _thermostats(self, thermal: ThermalOutputs) -> None:
        """Battery heater and loop heater thermostats on the previous step's temperatures.

        The battery heater is on below ``heater_on_k``, off above ``heater_off_k``. Two
        thermostats drive the one loop heater on the compute cold plate: the chips'
        (``loop_heater_on_k`` / ``loop_heater_off_k``) and the radiator's freeze guard
        (``freeze_guard_on_k`` / ``freeze_guard_off_k``), whose heat the bypass valve passes
        on to the radiator once the chips are at the loop setpoint. NaN (unknown) keeps a
        heater as it is. While every heater is off and nothing is cold (the usual case), a
        minimum per temperature settles it.
        """
        p = self.params
        temp_b = thermal.temp_battery_k
        temp_c = thermal.temp_compute_k
        temp_r = thermal.temp_radiator_k
        coldest = _coldest_k(thermal, temp_r, temp_c, temp_b)
        if temp_b is not None and (self._n_heaters_on
                                   or _any_below(temp_b, p.heater_on_k, coldest[BATTERY])):
            self.heater_on = thermostat(self.heater_on, temp_b < p.heater_on_k,
                                        temp_b > p.heater_off_k)
            np.multiply(self.heater_on, p.heater_power_w, out=self._heater_w)
            self._n_heaters_on = int(np.count_nonzero(self.heater_on))
            self._heaters_changed = True
        if temp_c is None:
            return
        if not (self._n_loop_on or _any_below(temp_c, p.loop_heater_on_k, coldest[COMPUTE])
                or (temp_r is not None
                    and _any_below(temp_r, p.freeze_guard_on_k, coldest[RADIATOR]))):
            return
        cold = temp_c < p.loop_heater_on_k
        warm = temp_c > p.loop_heater_off_k
        if temp_r is not None:
            cold |= temp_r < p.freeze_guard_on_k
            warm &= temp_r > p.freeze_guard_off_k
        self.loop_heater_on = thermostat(self.loop_heater_on, cold, warm)
        np.multiply(self.loop_heater_on, p.loop_heater_power_w, out=self._loop_w)
        self._n_loop_on = int(np.count_nonzero(self.loop_heater_on))
        self._heaters_changed = True

    def settle_heaters_w(self, temps_k: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The heaters' part of thermal's starting state (docs/models.md, "Starting state").

        Thermal calls it while it settles: first with None, which switches every heater
        off, then with each settled state, (4, n) K in thermal's node order, which switches
        on (never off) each heater whose thermostat reads cold there: the battery heater
        below ``heater_on_k``, the loop heater below ``loop_heater_on_k`` (chips) or
        ``freeze_guard_on_k`` (radiator). The next step's thermostats start from that state.
        ``settle_cycling`` then lists the satellites with a heater on whose state reads warm
        enough to switch it off: no steady state agrees with their thermostat, which cycles.

        Returns:
            Loop heater and battery heater power, (n,) W each (this model's arrays).
        """
        p = self.params
        if temps_k is None:
            self.heater_on = np.zeros(self.n_sats, dtype=bool)
            self.loop_heater_on = np.zeros(self.n_sats, dtype=bool)
            self.settle_cycling = np.zeros(0, dtype=np.intp)
        else:  # NaN reads warm for the cold test: a satellite with bad inputs stays off
            t_r, t_c, t_b = temps_k[RADIATOR], temps_k[COMPUTE], temps_k[BATTERY]
            self.heater_on |= t_b < p.heater_on_k
            self.loop_heater_on |= (t_c < p.loop_heater_on_k) | (t_r < p.freeze_guard_on_k)
            warm_loop = (t_c > p.loop_heater_off_k) & (t_r > p.freeze_guard_off_k)
            self.settle_cycling = np.flatnonzero((self.loop_heater_on & warm_loop)
                                                 | (self.heater_on & (t_b > p.heater_off_k)))
        np.multiply(self.heater_on, p.heater_power_w, out=self._heater_w)
        np.multiply(self.loop_heater_on, p.loop_heater_power_w, out=self._loop_w)
        self._n_heaters_on = int(np.count_nonzero(self.heater_on))
        self._n_loop_on = int(np.count_nonzero(self.loop_heater_on))
        self.heater.array[:] = self._heater_w
        self.loop_heater.array[:] = self._loop_w
        return self._loop_w, self._heater_w

    def _with_measured(self, drivers: DriverOutputs, bus: np.ndarray, heater: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Copies of ``bus`` and ``heater`` (W) with the measured values of live mirrored
        nodes in place of the model's, where measured (docs/models.md, "Mirror")."""
        sats, measured = drivers.mirror_sat, drivers.measured_drivers
        bus, heater = bus.copy(), heater.copy()
        for array, key in ((bus, "bus_power_w"), (heater, "heater_power_w")):
            values = measured.get(key)
            if values is not None:
                has = np.isfinite(values)
                array[sats[has]] = values[has]
        return bus, heater

    def fleet(self) -> dict[str, float]:
        n = self.soc.array.size
        if self._fleet_sums is not None and n:  # the last step's, from its float64 rows
            p_solar_w, soc_sum, p_load_w, soc_min = self._fleet_sums
        else:
            p_solar_w = float(self.p_solar.array.sum(dtype=np.float64))
            p_load_w = float(self.p_load.array.sum(dtype=np.float64))
            soc_sum = float(self.soc.array.sum(dtype=np.float64))
            soc_min = float(self.soc.array.min()) if n else 0.0
        return {
            "p_solar_total_w": p_solar_w,
            "p_load_total_w": p_load_w,
            "soc_min_frac": soc_min,
            "soc_mean_frac": soc_sum / n if n else 0.0,
            "n_power_capped": int(np.count_nonzero(self.capped)),
            "n_heaters_on": int(np.count_nonzero(self.heater_on)),
            "n_loop_heaters_on": int(np.count_nonzero(self.loop_heater_on)),
            # No loop heater on: nothing to add up.
            "loop_heater_total_w": (float(self.loop_heater.array.sum(dtype=np.float64))
                                    if self._n_loop_on else 0.0),
        }

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {"params": dict(vars(p)),
                "array_efficiency_ref_frac": p.array_efficiency_ref_frac,
                "solar_constant_w_m2": SOLAR_CONSTANT_W_M2}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

    # ---- ledger

    @property
    def e_array_j(self) -> np.ndarray:
        """(n,) energy drawn from the arrays since the start (before regulation), J."""
        return self._ledger.joules()[0]

    @property
    def e_dissipated_j(self) -> np.ndarray:
        """(n,) electrical energy dissipated as heat since the start, J."""
        return self._ledger.joules()[1]

    @property
    def e_unserved_j(self) -> np.ndarray:
        """(n,) load energy that could not be served since the start, J."""
        return self._ledger.joules()[2]

    def stored_j(self) -> np.ndarray:
        """(n,) chemical energy added to the battery since the start, J (nominal capacity)."""
        p = self.params
        return (self.soc_state - p.soc_initial_frac) * p.battery_capacity_wh * J_PER_WH

    # ---- internals

    def _array_power_per_sunlit_w(self, ctx: StepContext) -> tuple[np.ndarray, SunlitStep]:
        """(n,) array output at maximum power point per unit visible Sun, W, and the step's
        sunlight."""
        p = self.params
        environment = ctx.environment
        s_w_m2, step_sun = environment.solar_flux_w_m2, environment.sunlit_step

        # Sun on the arrays per unit visible Sun, W/m²: a number under yaw steering (the
        # arrays face the Sun exactly), per satellite otherwise.
        sun_in: float | np.ndarray = s_w_m2
        if self.thermal.attitude != "yaw_steering":
            env = self._env
            beta = ctx.orbit.beta_deg
            if beta is not None:
                np.copyto(env["beta"], beta, where=np.isfinite(beta))
            sun_in = s_w_m2 * sun_exposure(self.thermal.attitude, env["beta"]).array_cos
        eta_ref = self._eta_ref
        # Quasi-steady array temperature: absorbed Sun minus the electrical output, plus
        # Earth IR on both faces (seen as vertical plates), radiated from both faces:
        # T⁴ = (S f (α - η) + F ε IR) / (ε σ), the constants folded into two products.
        eps = p.array_emissivity_front + p.array_emissivity_back
        per_t4 = 1.0 / (eps * STEFAN_BOLTZMANN_W_M2_K4)
        temp = np.multiply(step_sun.mean, sun_in * ((p.array_absorptivity - eta_ref) * per_t4),
                           out=self._temp)
        temp += np.multiply(environment.earth_view.f_vertical,
                            self.thermal.earth_ir_w_m2 * eps * per_t4, out=self._eta)
        np.sqrt(temp, out=temp)
        np.sqrt(temp, out=temp)
        self.temp_array.array[:] = temp
        # Efficiency falls linearly with temperature (never below zero); with a number for
        # the Sun the output's scale is folded in too: max(x, 0) K = max(x K, 0) for K >= 0.
        scale = p.array_area_m2 * eta_ref * sun_in if isinstance(sun_in, float) else 1.0
        eta = np.multiply(temp, p.array_temp_coeff_per_k * scale, out=self._eta)
        eta += (1.0 - p.array_temp_coeff_per_k * p.array_ref_temp_k) * scale
        np.maximum(eta, 0.0, out=eta)
        health = degraded_frac(ctx.faults.solar_health_frac)
        if health is not None:
            eta *= health
        if not isinstance(sun_in, float):
            eta *= p.array_area_m2 * eta_ref
            eta *= sun_in
        return eta, step_sun

    def _update_cap(self, ctx: StepContext, supply: np.ndarray, base: np.ndarray,
                    payload_w: np.ndarray, capacity_j: np.ndarray) -> None:
        """Cap compute at the reserve; one event on engaging, one on lifting the cap.

        The cap engages when the state of charge is at or below ``soc_reserve_frac`` while
        generation does not cover the load (``payload_w`` included), and is lifted only once
        the battery is back ``cap_release_band_frac`` above the reserve: that band is the
        hysteresis. While capped, compute may use what the arrays give beyond the bus, the
        heater and ``recharge_reserve_w`` (so the battery recharges in sunlight): zero in
        eclipse. A node whose battery has failed is capped to the arrays' surplus. The step
        calls it only while something is capped or can engage.
        """
        p = self.params
        soc = self.soc_state
        self._cap_changed = True
        no_battery = np.less_equal(capacity_j, 0.0)
        engage = (soc <= p.soc_reserve_frac) & (supply < base + payload_w)
        release = soc >= p.soc_reserve_frac + p.cap_release_band_frac
        capped = np.where(self.capped, ~release, engage) | no_battery
        recharge = np.where(no_battery, 0.0, p.recharge_reserve_w)
        cap = np.maximum(supply - base - recharge, 0.0)
        self._cap_w = np.where(capped, cap, np.inf)
        changed = np.flatnonzero(capped != self.capped)
        self.capped = capped
        self._n_capped = int(np.count_nonzero(capped))
        for i in changed:  # the few satellites whose cap state changed this step
            name = self.sat_names[i]
            if capped[i]:
                ctx.events.raise_event(
                    "power_cap", "warning",
                    f"{name}: battery at reserve (SOC {soc[i]:.0%}): compute capped at"
                    f" {cap[i]:.0f} W", sat=int(i), power_cap_w=float(cap[i]),
                    soc_frac=float(soc[i]))
            else:
                ctx.events.raise_event(
                    "power_cap_clear", "info",
                    f"{name}: battery recovered (SOC {soc[i]:.0%}): compute cap lifted",
                    sat=int(i), soc_frac=float(soc[i]))


def thermostat(on: np.ndarray, cold: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """On/off with hysteresis: on where ``cold``, off where ``warm``, else as it was; (n,)."""
    return (on | cold) & ~(warm & ~cold)


def _any_below(values: np.ndarray, limit: float, coldest: float | None = None) -> bool:
    """Whether any value (NaN aside) is below ``limit``: one reduction over (n,), or none
    with the values' minimum (NaN aside) ``coldest`` known."""
    if coldest is None:
        return bool(values.size) and bool(np.fmin.reduce(values, axis=None) < limit)
    return bool(coldest < limit)


def _coldest_k(thermal: ThermalOutputs, *temps: np.ndarray | None) -> list[Any]:
    """Thermal's minima (NaN aside, node order) of its temperature fields, when ``temps``
    (radiator, compute, battery) are those fields; else Nones. Thermal publishes them as
    ``temp_min_k``, of ``temp_block_k``, the (4, n) block the fields are rows of."""
    block, minima = thermal.temp_block_k, thermal.temp_min_k
    if block is None or not all(t is None or t.base is block for t in temps):
        return [None] * 4
    return list(minima)  # float32 scalars: compared as the fields' own values


def _or_zero(values: np.ndarray | None) -> np.ndarray | float:
    return 0.0 if values is None else values
