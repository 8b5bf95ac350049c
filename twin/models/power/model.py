"""PowerModel: the electrical power subsystem of every satellite, stepped in place each step.

It takes the arrays' output (``array``), runs the heaters' thermostats (``heaters``),
shares the supply among loads and battery (``balance``), caps compute power as the battery
nears its reserve, and publishes the flows and the heat they leave in the node for
thermal. Equations and sizing: docs/models.md, "Power".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.core.constants import J_PER_WH
from twin.core.interfaces import DriverOutputs, PowerOutputs
from twin.core.slices import SlicePool
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.environment import SOLAR_CONSTANT_W_M2
from twin.models.faults import degraded_frac
from twin.models.ledger import EnergyLedger
from twin.models.power.array import SolarArray
from twin.models.power.balance import (
    BUS_INTERNAL,
    D_SOC,
    DISSIPATED,
    FLOW,
    LOAD,
    LOSS,
    P_AVAIL,
    SERVED,
    SOC,
    STEP_ROWS,
    USED,
    BatteryBalance,
)
from twin.models.power.heaters import Heaters
from twin.models.power.params import PowerParams
from twin.models.power.passivation import InService
from twin.models.thermal import ThermalParams
from twin.scenario import Scenario, parse_section

# At most this many per-node alarms for one step's non-finite states; the rest are summed.
MAX_GUARD_EVENTS = 10


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "p_solar_total_w": ("W", "solar array output"),
    "p_load_total_w": ("W", "electrical load served"),
    "soc_min_frac": ("1", "lowest battery state of charge of a node in service"),
    "soc_mean_frac": ("1", "mean battery state of charge over the nodes in service"),
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
    reads: tuple[str, ...] = ("orbit", "faults", "drivers", "links", "compute",
                              "environment", "thermal", "lifecycle")
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
                         "Solar array output available at maximum power point", over="step")
        self.p_load = f("p_load_w", "<f4", (n,), "W",
                        "Electrical load: bus + heaters + compute", over="step")
        self.p_battery = f("p_battery_w", "<f4", (n,), "W",
                           "Battery terminal power: + charging, - discharging", over="step")
        self.soc = f("soc_frac", "<f4", (n,), "1", "Battery state of charge",
                     limits={"warn_low": p.soc_reserve_frac + 0.10,
                             "alarm_low": p.soc_reserve_frac})
        # Those four are rows of one float32 block, and their float64 sources the first
        # rows of another (see STEP_ROWS): one copy publishes them. The step's balance fills
        # the block's rows from LOAD on, so a shadow crossing rewrites them in one pass.
        self._fields_f4 = np.zeros((4, n), dtype=np.float32)
        self._rows = np.zeros((len(STEP_ROWS), n))
        for row, fld in zip((P_AVAIL, SOC, LOAD, FLOW), (self.p_solar, self.soc, self.p_load,
                                                          self.p_battery), strict=True):
            self._fields_f4[row] = fld.array
            fld.array = self._fields_f4[row]
        self.cap = f("power_cap_w", "<f4", (n,), "W",
                     "Cap on compute power, +inf when none", fill=np.inf,
                     infinite="none")
        self.heater = f("heater_power_w", "<f4", (n,), "W", "Battery heater power",
                        over="step")
        self.loop_heater = f("loop_heater_power_w", "<f4", (n,), "W",
                             "Compute cold-plate (coolant loop) heater power", over="step")
        self.temp_array = f("temp_array_k", "<f4", (n,), "K",
                            "Solar array (quasi-steady)", over="step")
        self.soc_state = self._rows[SOC]  # float64 state
        self.soc_state[:] = p.soc_initial_frac
        self._soc_before = self.soc_state.copy()  # the last good state, for the guard below
        self.non_finite_steps = 0  # satellite-steps whose state was kept (non-finite result)
        self._heaters = Heaters(n, p)
        self._bus_w = np.full(n, p.bus_power_w)  # the model's bus power, W (constant)
        self.capped = np.zeros(n, dtype=bool)
        self._n_capped = 0  # satellites capped (count of ``capped``)
        # The last step's sums of p_solar, soc and p_load and its smallest soc, for fleet().
        self._fleet_sums: tuple[float, float, float, float] | None = None
        self._in_service = InService(n_sats)  # the lifecycle's others are passivated
        self._cap_w = np.full(n, np.inf)
        self._cap_changed = False  # whether the cap field needs rewriting
        self._solar_array = SolarArray(n, p, self.thermal, self.temp_array)
        self._battery = BatteryBalance(p)
        self.outputs = PowerOutputs(settle_heaters_w=self.settle_heaters_w)
        # Electrical ledger since start, J: generated = dissipated + stored (chemical), and
        # the load energy not served.
        self._ledger = EnergyLedger(3, n)
        # Scratch, (n,) float64 unless said: rewritten every step, never kept across one.
        self._payload = np.empty(n)
        self._supply = np.empty(n)
        self._reg_loss = np.empty(n)

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> PowerModel:
        return cls(len(scenario.satellites), parse_section(PowerParams, scenario, "power"),
                   parse_section(ThermalParams, scenario, "thermal"),
                   [s.name for s in scenario.satellites])

    # ---- contract

    def run_on_workers(self, workers: int) -> None:
        """Compute the solar arrays' rows and the battery balance in ``workers`` slices on
        threads (the engine's ``workers``; twin.core.slices): the same bits for any number."""
        self.close()
        self._solar_array.pool = SlicePool(len(self.soc_state), workers)

    def close(self) -> None:
        """End the row slices' threads, if any."""
        self._solar_array.pool.close()

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
        unit_w = self._solar_array.output_per_sunlit_w(ctx.orbit, ctx.environment, ctx.faults)
        array_ageing = degraded_frac(ctx.lifecycle.array_health_frac)  # last step's
        if array_ageing is not None:
            unit_w = unit_w * array_ageing
        sun = ctx.environment.sunlit_step
        p_avail = np.multiply(unit_w, sun.mean, out=rows[P_AVAIL])

        # Heaters: thermostats on the previous step's temperatures.
        heaters = self._heaters
        heaters.update(ctx.thermal)
        bus, heater, loop_heater = self._bus_w, heaters.heater_w, heaters.loop_w
        isl_w = ctx.links.isl_power_w
        if isl_w is not None:  # link terminals are bus loads (thermal: bus heat)
            bus = bus + isl_w
        # Measured bus and battery heater power of live mirrored nodes replace the model's.
        drivers = ctx.drivers
        if drivers.mirror_sat.size:
            bus, heater = _with_measured(drivers, bus, heater)
        bus, heater, loop_heater = self._in_service.passivate(  # last step's retired nodes
            ctx.lifecycle.out_of_service_nodes, p_avail, bus, heater, loop_heater)
        demand = ctx.compute.compute_power_w
        payload = self._payload
        if demand is None:  # no compute model yet: a fixed load that obeys the cap
            np.minimum(p.compute_load_w, self._cap_w, out=payload)
        else:  # a float32 demand is widened first: a mixed-type fmax costs three passes
            np.copyto(payload, demand)
            np.fmax(payload, 0.0, out=payload)  # NaN -> 0
            if not math.isfinite(float(np.add.reduce(payload))):  # +inf: an absurd input
                self._drop_infinite_demand(ctx, payload)
        if bus is self._bus_w and not (heaters.n_heaters_on or heaters.n_loop_on):
            base: float | np.ndarray = p.bus_power_w  # every heater off: the bus alone
        else:
            base = bus + heater + loop_heater

        health = degraded_frac(ctx.faults.battery_health_frac)
        capacity_j: float | np.ndarray = p.battery_capacity_wh * J_PER_WH
        if health is not None:
            capacity_j = capacity_j * health
        fade = degraded_frac(ctx.lifecycle.battery_capacity_frac)  # last step's
        if fade is not None:
            capacity_j = capacity_j * fade
        eta_r = p.regulation_efficiency_frac
        soc = self.soc_state
        np.copyto(self._soc_before, soc)
        supply = np.multiply(p_avail, eta_r, out=self._supply)
        if dt > 0.0 and isinstance(capacity_j, float) and capacity_j > 0.0:  # the usual case
            unserved = self._battery.balance_in_slices(self._solar_array.pool, supply, base,
                                                      payload, soc, capacity_j, dt,
                                                      rows[LOAD:DISSIPATED])
        else:
            unserved = self._battery.balance(supply, base, payload, soc, capacity_j, dt,
                                            rows[LOAD:DISSIPATED])
        # A step that crosses the shadow edge is two segments, sunlit then dark (or the
        # reverse): a full battery cannot bank the sunlit part's surplus for the dark part.
        if sun.crossed.size and dt > 0.0:
            unserved = self._battery.split_at_shadow_edge(rows, soc, unit_w, sun, base, payload,
                                                         capacity_j, dt, unserved)
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
        self._fleet_sums = self._in_service.fleet_sums(
            (*np.add.reduce(rows[:3], axis=1).tolist(), soc_min), soc)
        if self._cap_changed:
            self.cap.array[:] = self._cap_w
            self._cap_changed = False
        if heaters.changed or heater is not heaters.heater_w:
            self.heater.array[:] = heater
            self.loop_heater.array[:] = loop_heater
            heaters.changed = heater is not heaters.heater_w
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
        if heater is heaters.heater_w and not (heaters.n_heaters_on or heaters.n_loop_on):
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

    def fields_rewritten(self) -> None:
        """The engine wrote the step's means into the fields after sub-steps: the totals
        follow from them, and the heater fields are written in full next step."""
        self._fleet_sums = None
        self._heaters.changed = True

    def settle_heaters_w(self, temps_k: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The heaters' part of thermal's starting state: ``Heaters.settle``, which also
        sets the heater fields.

        Returns:
            Loop heater and battery heater power, (n,) W each (the heaters' arrays).
        """
        loop_w, heater_w = self._heaters.settle(temps_k)
        self.heater.array[:] = heater_w
        self.loop_heater.array[:] = loop_w
        return loop_w, heater_w

    @property
    def heater_on(self) -> np.ndarray:
        """(n,) bool: battery heaters on."""
        return self._heaters.heater_on

    @property
    def loop_heater_on(self) -> np.ndarray:
        """(n,) bool: loop heaters on."""
        return self._heaters.loop_heater_on

    @property
    def settle_cycling(self) -> np.ndarray:
        """Satellites whose heater thermostats cycle at the starting state (``Heaters``)."""
        return self._heaters.settle_cycling

    def fleet(self) -> dict[str, float]:
        soc_live = self._in_service.live(self.soc.array)
        n = soc_live.size
        if self._fleet_sums is not None and n:  # the last step's, from its float64 rows
            p_solar_w, soc_sum, p_load_w, soc_min = self._fleet_sums
        else:
            p_solar_w = float(self.p_solar.array.sum(dtype=np.float64))
            p_load_w = float(self.p_load.array.sum(dtype=np.float64))
            soc_sum = float(soc_live.sum(dtype=np.float64))
            soc_min = float(soc_live.min()) if n else 0.0
        return {
            "p_solar_total_w": p_solar_w,
            "p_load_total_w": p_load_w,
            "soc_min_frac": soc_min,
            "soc_mean_frac": soc_sum / n if n else 0.0,
            "n_power_capped": int(np.count_nonzero(self.capped)),
            "n_heaters_on": int(np.count_nonzero(self._heaters.heater_on)),
            "n_loop_heaters_on": int(np.count_nonzero(self._heaters.loop_heater_on)),
            # No loop heater on: nothing to add up.
            "loop_heater_total_w": (float(self.loop_heater.array.sum(dtype=np.float64))
                                    if self._heaters.n_loop_on else 0.0),
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


def _with_measured(drivers: DriverOutputs, bus: np.ndarray, heater: np.ndarray
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
