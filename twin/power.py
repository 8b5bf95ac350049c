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

from twin.attitude import sun_exposure
from twin.scenario import InvalidField, Scenario, parse_section
from twin.subsystem import CommandHandler, Field, StepContext, make_field
from twin.thermal import (
    BATTERY,
    COMPUTE,
    RADIATOR,
    SOLAR_CONSTANT_W_M2,
    STEFAN_BOLTZMANN_W_M2_K4,
    EarthView,
    StepSunlight,
    SunlitStep,
    ThermalParams,
    degraded_frac,
    solar_flux_w_m2,
)

J_PER_WH = 3600.0


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
    regulation_efficiency_frac: float = field(default=0.97, metadata=_m("1", gt=0.0, max=1.0))
    battery_capacity_wh: float = field(default=12_000.0, metadata=_m("Wh", min=0.0, max=1.0e8))
    charge_efficiency_frac: float = field(default=0.97, metadata=_m("1", gt=0.0, max=1.0))
    discharge_efficiency_frac: float = field(default=0.97, metadata=_m("1", gt=0.0, max=1.0))
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


class PowerModel:
    """Generation, storage and loads of every node, updated in place each step.

    Reads ``sunlit_frac``, ``beta_deg``, ``alt_km``, ``sun_gcrs_km`` (orbit),
    ``solar_health_frac``, ``battery_health_frac`` (faults), ``compute_power_w`` (compute,
    when present) and ``temp_battery_k``, ``temp_compute_k``, ``temp_radiator_k`` (thermal,
    previous step, for the heaters). Writes ``power_cap_w``, ``soc_frac``, ``p_solar_w``,
    ``heater_power_w``, ``loop_heater_power_w``, ``bus_power_w`` and the heat that
    thermal needs: ``payload_power_w``, ``battery_loss_w``, ``regulation_loss_w`` (and
    ``earth_view``, its updated `EarthView`, so thermal need not keep its own) and
    ``settle_heaters_w``, the heaters' part of thermal's starting state.

    Args:
        n_sats: Number of satellites.
        params: The ``[power]`` parameters.
        thermal: The ``[thermal]`` parameters (attitude law, Earth IR for the arrays).
        sat_names: Names for event messages.
    """

    name = "power"

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
        # Those four are rows of one float32 block, and their float64 sources rows of
        # another (p_avail, load, battery flow, state of charge): one copy publishes them.
        self._fields_f4 = np.zeros((4, n), dtype=np.float32)
        self._rows = np.zeros((4, n))
        for row, fld in enumerate((self.p_solar, self.p_load, self.p_battery, self.soc)):
            self._fields_f4[row] = fld.array
            fld.array = self._fields_f4[row]
        self.cap = f("power_cap_w", "<f4", (n,), "W",
                     "Cap on compute power, +inf when none", fill=np.inf)
        self.heater = f("heater_power_w", "<f4", (n,), "W", "Battery heater power")
        self.loop_heater = f("loop_heater_power_w", "<f4", (n,), "W",
                             "Compute cold-plate (coolant loop) heater power")
        self.temp_array = f("temp_array_k", "<f4", (n,), "K",
                            "Solar array (quasi-steady)")
        self.soc_state = self._rows[3]  # float64 state
        self.soc_state[:] = p.soc_initial_frac
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
        self._cap_w = np.full(n, np.inf)
        self._cap_changed = False  # whether the cap field needs rewriting
        self._env = {"beta": np.zeros(n)}
        self.sunlight = StepSunlight(n)
        self.view = EarthView(n)
        # Electrical ledger since start, J: generated = dissipated + stored (chemical).
        # Rows of one block, so that a step adds the first two in one pass.
        self._ledger = np.zeros((3, n))
        self.e_array_j, self.e_dissipated_j, self.e_unserved_j = self._ledger
        # Scratch, (n,) float64 unless said: rewritten every step, never kept across one.
        self._payload = np.empty(n)
        self._supply = np.empty(n)
        self._reg_loss = np.empty(n)
        self._spent = np.empty((2, n))  # [array used, dissipated], then times dt
        self._temp = np.empty(n)
        self._eta = np.empty(n)
        self._buffers = {"flow": self._rows[2], "load": self._rows[1],
                         "used": self._spent[0]}

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> PowerModel:
        return cls(len(scenario.satellites), parse_section(PowerParams, scenario, "power"),
                   parse_section(ThermalParams, scenario, "thermal"),
                   [s.name for s in scenario.satellites])

    # ---- contract

    def fields(self) -> list[Field]:
        return [self.p_solar, self.p_load, self.p_battery, self.soc, self.cap, self.heater,
                self.loop_heater, self.temp_array]

    def step(self, ctx: StepContext) -> None:
        p = self.params
        shared = ctx.shared
        dt = max(float(ctx.dt_s), 0.0)
        # Array output per unit of visible Sun, and the step's mean visible fraction.
        unit_w, sun = self._array_power_per_sunlit_w(shared)
        p_avail = np.multiply(unit_w, sun.mean, out=self._rows[0])

        # Measured bus and heater power of mirrored satellites, read before the thermostats
        # rewrite the arrays the mirror may have written them into.
        mirrored = shared.get("mirror_sat")
        measured = None
        if mirrored is not None and len(mirrored):
            measured = self._read_mirrored(shared, mirrored)
        # Heaters: thermostats on the previous step's temperatures.
        self._thermostats(shared)
        bus, heater, loop_heater = self._bus_w, self._heater_w, self._loop_w
        if measured is not None:
            bus, heater = bus.copy(), heater.copy()
            for array, values in zip((bus, heater), measured, strict=True):
                if values is not None:
                    array[mirrored] = values
        demand = shared.get("compute_power_w")
        if demand is None:  # no compute model yet: a fixed load that obeys the cap
            payload = np.minimum(p.compute_load_w, self._cap_w, out=self._payload)
        else:
            payload = np.fmax(demand, 0.0, out=self._payload)  # NaN -> 0
        if bus is self._bus_w and not (self._n_heaters_on or self._n_loop_on):
            base: float | np.ndarray = p.bus_power_w  # every heater off: the bus alone
        else:
            base = bus + heater + loop_heater

        health = degraded_frac(shared.get("battery_health_frac"))
        capacity_j: float | np.ndarray = p.battery_capacity_wh * J_PER_WH
        if health is not None:
            capacity_j = capacity_j * health
        eta_r = p.regulation_efficiency_frac
        soc = self.soc_state
        supply = np.multiply(p_avail, eta_r, out=self._supply)
        flows = self._balance(supply, base, payload, soc, capacity_j, dt, self._buffers)
        # A step that crosses the shadow edge is two segments, sunlit then dark (or the
        # reverse): a full battery cannot bank the sunlit part's surplus for the dark part.
        if sun.crossed.size and dt > 0.0:
            self._split_at_shadow_edge(flows, unit_w, sun, base, payload, capacity_j, dt)
        soc += flows["d_soc"]
        load, used, batt_loss = flows["load"], flows["array_used"], flows["battery_loss"]
        reg_loss = np.multiply(used, 1.0 - eta_r, out=self._reg_loss)
        unserved = flows["unserved"]
        if dt > 0.0:
            # Ledger rows [array, dissipated] += [used, load + losses] dt, in two passes
            # (``used`` is row 0 of ``spent``: scaled by dt in place, not read after).
            spent = self._spent
            np.add(load, reg_loss, out=spent[1])
            spent[1] += batt_loss
            spent *= dt
            self._ledger[:2] += spent
            if unserved is not None:
                self.e_unserved_j += unserved * dt

        self._update_cap(ctx, supply, base, payload, capacity_j)

        # p_solar, p_load, p_battery and soc are rows of one block: one float32 copy.
        np.copyto(self._fields_f4, self._rows, casting="same_kind")
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
        short = flows["unserved_base"]
        if short is not None and short.any():  # rare: the battery is empty, the arrays short
            bus_served = bus - np.minimum(short, bus)
            short = np.maximum(short - bus, 0.0)
            heater_served = heater - np.minimum(short, heater)
            loop_served = loop_heater - np.maximum(short - heater, 0.0)
        shared.update(
            power_cap_w=self.cap.array, soc_frac=self.soc.array, p_solar_w=self.p_solar.array,
            heater_power_w=heater_served, loop_heater_power_w=loop_served,
            bus_power_w=bus_served, payload_power_w=flows["payload"],
            battery_loss_w=batt_loss, regulation_loss_w=reg_loss,
            sunlit_step_mean_frac=sun.mean,  # thermal uses the same eclipse timing
            sun_along_km=self.sunlight.along,  # and r·ŝ for its albedo
            earth_view=self.view,  # and the altitude-only view, updated above
            settle_heaters_w=self.settle_heaters_w,  # thermal's starting state
        )

    def _split_at_shadow_edge(self, flows: dict[str, Any], unit_w: np.ndarray,
                              sun: SunlitStep, base: float | np.ndarray, payload: np.ndarray,
                              capacity_j: float | np.ndarray, dt: float) -> None:
        """Redo the balance of the few satellites that crossed the shadow edge in the step
        as two segments, and write their step means into ``flows`` in place."""
        cross, tau = sun.crossed, sun.tau
        eta_r = self.params.regulation_efficiency_frac
        soc = self.soc_state[cross]
        base_x = base if isinstance(base, float) else base[cross]
        cap_x = capacity_j if isinstance(capacity_j, float) else capacity_j[cross]
        unit_x = unit_w[cross] if isinstance(unit_w, np.ndarray) else unit_w
        args = (base_x, payload[cross])
        first = self._balance(unit_x * sun.before[cross] * eta_r, *args, soc, cap_x, tau * dt)
        rest = 1.0 - tau
        second = self._balance(unit_x * sun.after[cross] * eta_r, *args, soc + first["d_soc"],
                               cap_x, rest * dt)
        if flows["payload"] is payload:  # served = demand: keep the demand for the cap
            flows["payload"] = payload.copy()
        for key, value in flows.items():
            one, two = first[key], second[key]
            if key == "d_soc":
                value[cross] = one + two
            elif value is None:  # none unserved over the whole step
                if one is not None or two is not None:
                    flows[key] = value = np.zeros(self.n_sats)
                    value[cross] = tau * _or_zero(one) + rest * _or_zero(two)
            else:  # step means of powers
                value[cross] = tau * _or_zero(one) + rest * _or_zero(two)

    def _balance(self, supply: np.ndarray, base: float | np.ndarray, payload: np.ndarray,
                 soc: np.ndarray, capacity_j: float | np.ndarray, dt: float | np.ndarray,
                 out: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Share supply among loads and battery over an interval; all (m,), W, J, s.

        The arrays feed the loads first; a surplus charges the battery (up to its charge
        limit and ``soc_max_frac``), a deficit discharges it (down to empty and its discharge
        limit). What neither can give is not drawn: compute is shed first, then the bus.
        The battery's terminal power is the net clipped between the discharge and charge
        limits; the rest of the arithmetic follows from its sign (one of charge and
        discharge is always zero).

        Args:
            out: Scratch arrays (``net``, ``hi``, ``lo``, ``flow``, ``load``, ``used``,
                ``loss``, ``d_soc``, ``discharging``) to fill instead of allocating.

        Returns:
            Mean powers over the interval (``load``, ``payload`` served, ``flow`` at the
            battery terminals (+ charging), ``array_used`` before regulation,
            ``battery_loss``, ``unserved`` and ``unserved_base``, None when nothing is
            unserved) and ``d_soc``, the change of state of charge.
        """
        p = self.params
        o = out or {}
        eta_c, eta_d = p.charge_efficiency_frac, p.discharge_efficiency_frac
        net = np.subtract(supply, base, out=o.get("net"))
        net -= payload
        scalar = isinstance(capacity_j, float) and isinstance(dt, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if (dt > 0.0) if isinstance(dt, float) else np.any(dt > 0.0):
                # Charge limit: room to soc_max_frac over the interval, then max_charge_w.
                hi = np.subtract(p.soc_max_frac, soc, out=o.get("hi"))
                hi *= capacity_j / (eta_c * dt)
                np.maximum(hi, 0.0, out=hi)
                np.minimum(hi, p.max_charge_w, out=hi)
                # Discharge limit, negated: the charge left over the interval, max_discharge_w.
                lo = np.multiply(soc, -(capacity_j * eta_d / dt) if scalar
                                 else -capacity_j * eta_d / dt, out=o.get("lo"))
                np.minimum(lo, 0.0, out=lo)
                np.maximum(lo, -p.max_discharge_w, out=lo)
            else:  # the epoch: show the flows, change nothing
                hi = np.zeros_like(supply)
                lo = np.where(np.greater(capacity_j, 0.0), -p.max_discharge_w, 0.0)
                lo = np.broadcast_to(lo, supply.shape)
            flow = np.maximum(net, lo, out=o.get("flow"))
            np.minimum(flow, hi, out=flow)
            load = np.add(base, payload, out=o.get("load"))
            served, unserved, unserved_base = payload, None, None
            if np.less(net, lo).any():  # rare: a deficit beyond what the battery can give
                unserved = np.maximum(flow - net, 0.0)
                shed = np.minimum(unserved, payload)
                served = payload - shed
                unserved_base = unserved - shed
                load -= unserved
            used = np.add(load, flow, out=o.get("used"))
            used /= p.regulation_efficiency_frac
            # Losses and stored energy per watt at the terminals, by the flow's sign (a
            # masked multiply costs ten plain ones: pick the factors with ``where``).
            discharging = np.less(flow, 0.0, out=o.get("discharging"))
            loss = np.multiply(flow, np.where(discharging, 1.0 - 1.0 / eta_d, 1.0 - eta_c),
                               out=o.get("loss"))
            if scalar:
                per_j = dt / capacity_j if capacity_j > 0.0 else 0.0
                d_soc = np.multiply(flow, np.where(discharging, per_j / eta_d, per_j * eta_c),
                                    out=o.get("d_soc"))
            else:
                d_soc = np.multiply(flow, np.where(discharging, 1.0 / eta_d, eta_c),
                                    out=o.get("d_soc"))
                d_soc *= dt
                d_soc /= capacity_j
                d_soc = np.where(np.greater(capacity_j, 0.0), d_soc, 0.0)
        return {"load": load, "payload": served, "flow": flow, "array_used": used,
                "battery_loss": loss, "unserved": unserved, "unserved_base": unserved_base,
                "d_soc": d_soc}

    def _thermostats(self, shared: dict[str, Any]) -> None:
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
        temp_b = shared.get("temp_battery_k")
        if temp_b is not None and (self._n_heaters_on or _any_below(temp_b, p.heater_on_k)):
            self.heater_on = thermostat(self.heater_on, temp_b < p.heater_on_k,
                                        temp_b > p.heater_off_k)
            np.multiply(self.heater_on, p.heater_power_w, out=self._heater_w)
            self._n_heaters_on = int(np.count_nonzero(self.heater_on))
            self._heaters_changed = True
        temp_c = shared.get("temp_compute_k")
        if temp_c is None:
            return
        temp_r = shared.get("temp_radiator_k")
        if not (self._n_loop_on or _any_below(temp_c, p.loop_heater_on_k)
                or (temp_r is not None and _any_below(temp_r, p.freeze_guard_on_k))):
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

    def _read_mirrored(self, shared: dict[str, Any], mirrored: np.ndarray
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Measured bus and heater power, W, of the satellites a live testbed mirrors.

        The mirror writes them, in place, into last step's ``bus_power_w`` and
        ``heater_power_w`` arrays before power steps (twin/mirror.py). Those may be this
        model's own arrays, so its own values are restored there once read.
        """
        p = self.params
        out = []
        for key in ("bus_power_w", "heater_power_w"):
            array = shared.get(key)
            valid = isinstance(array, np.ndarray) and array.shape == (self.n_sats,)
            out.append(array[mirrored] if valid else None)
        self._bus_w[mirrored] = p.bus_power_w
        self._heater_w[mirrored] = np.where(self.heater_on[mirrored], p.heater_power_w, 0.0)
        return out[0], out[1]

    def fleet(self) -> dict[str, float]:
        soc = self.soc.array
        return {
            "p_solar_total_w": float(self.p_solar.array.sum(dtype=np.float64)),
            "p_load_total_w": float(self.p_load.array.sum(dtype=np.float64)),
            "soc_min_frac": float(soc.min()) if soc.size else 0.0,
            "soc_mean_frac": float(soc.mean()) if soc.size else 0.0,
            "n_power_capped": int(np.count_nonzero(self.capped)),
            "n_heaters_on": int(np.count_nonzero(self.heater_on)),
            "n_loop_heaters_on": int(np.count_nonzero(self.loop_heater_on)),
            "loop_heater_total_w": float(self.loop_heater.array.sum(dtype=np.float64)),
        }

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {"params": dict(vars(p)),
                "array_efficiency_ref_frac": p.array_efficiency_ref_frac,
                "solar_constant_w_m2": SOLAR_CONSTANT_W_M2}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

    # ---- ledger

    def stored_j(self) -> np.ndarray:
        """(n,) chemical energy added to the battery since the start, J (nominal capacity)."""
        p = self.params
        return (self.soc_state - p.soc_initial_frac) * p.battery_capacity_wh * J_PER_WH

    # ---- internals

    def _array_power_per_sunlit_w(self, shared: dict[str, Any]
                                  ) -> tuple[np.ndarray, SunlitStep]:
        """(n,) array output at maximum power point per unit visible Sun, W, and the step's
        sunlight."""
        p = self.params
        alt = shared.get("alt_km")
        if alt is not None:
            self.view.update(alt)
        sun = shared.get("sun_gcrs_km")
        s_w_m2 = SOLAR_CONSTANT_W_M2 if sun is None else float(
            solar_flux_w_m2(math.sqrt(float(np.dot(sun, sun)))))
        step_sun = self.sunlight.update(shared)

        # Sun on the arrays per unit visible Sun, W/m²: a number under yaw steering (the
        # arrays face the Sun exactly), per satellite otherwise.
        sun_in: float | np.ndarray = s_w_m2
        if self.thermal.attitude != "yaw_steering":
            env = self._env
            beta = shared.get("beta_deg")
            if beta is not None:
                np.copyto(env["beta"], beta, where=np.isfinite(beta))
            sun_in = s_w_m2 * sun_exposure(self.thermal.attitude, env["beta"]).array_cos
        eta_ref = p.array_efficiency_ref_frac
        # Quasi-steady array temperature: absorbed Sun minus the electrical output, plus
        # Earth IR on both faces (seen as vertical plates), radiated from both faces.
        eps = p.array_emissivity_front + p.array_emissivity_back
        temp = np.multiply(step_sun.mean, sun_in, out=self._temp)
        temp *= p.array_absorptivity - eta_ref
        temp += self.view.f_vertical * (self.thermal.earth_ir_w_m2 * eps)
        temp *= 1.0 / (eps * STEFAN_BOLTZMANN_W_M2_K4)
        np.sqrt(temp, out=temp)
        np.sqrt(temp, out=temp)
        self.temp_array.array[:] = temp
        # Efficiency falls linearly with temperature (never below zero).
        eta = np.multiply(temp, p.array_temp_coeff_per_k, out=self._eta)
        eta += 1.0 - p.array_temp_coeff_per_k * p.array_ref_temp_k
        np.maximum(eta, 0.0, out=eta)
        health = degraded_frac(shared.get("solar_health_frac"))
        if health is not None:
            eta *= health
        if isinstance(sun_in, float):
            eta *= p.array_area_m2 * eta_ref * sun_in
        else:
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
        eclipse. A node whose battery has failed is capped to the arrays' surplus.
        """
        p = self.params
        soc = self.soc_state
        if not self._n_capped and soc.min() > p.soc_reserve_frac and (
                capacity_j > 0.0 if isinstance(capacity_j, float) else capacity_j.min() > 0.0):
            return  # nothing capped and nothing can engage: the cap stays +inf everywhere
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


def _any_below(values: np.ndarray, limit: float) -> bool:
    """Whether any value (NaN aside) is below ``limit``: one reduction over (n,)."""
    return bool(values.size) and bool(np.fmin.reduce(values, axis=None) < limit)


def _or_zero(values: np.ndarray | None) -> np.ndarray | float:
    return 0.0 if values is None else values
