"""Electrical power of every node: solar arrays, battery, heaters, loads and the power cap.

Per step and per satellite, all numpy: array output from the Sun's flux, the attitude law's
incidence, the step's mean sunlit fraction, degradation and the array's quasi-steady
temperature; loads (bus, battery heater, compute cold-plate heater, compute); the battery
takes the surplus or covers the deficit with its charge and discharge efficiencies. As the
state of charge nears its reserve the node caps compute power (``power_cap_w``, read by
compute on the next step) and says so with an event. Equations and sizing: docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.attitude import sun_exposure
from twin.scenario import InvalidField, Scenario, parse_section
from twin.subsystem import CommandHandler, Field, StepContext, make_field
from twin.thermal import (
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
    ``earth_view``, its updated `EarthView`, so thermal need not keep its own).

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
        self.cap = f("power_cap_w", "<f4", (n,), "W",
                     "Cap on compute power, +inf when none", fill=np.inf)
        self.heater = f("heater_power_w", "<f4", (n,), "W", "Battery heater power")
        self.loop_heater = f("loop_heater_power_w", "<f4", (n,), "W",
                             "Compute cold-plate (coolant loop) heater power")
        self.temp_array = f("temp_array_k", "<f4", (n,), "K",
                            "Solar array (quasi-steady)")
        self.soc_state = np.full(n, p.soc_initial_frac)  # float64 state
        self.heater_on = np.zeros(n, dtype=bool)
        self.loop_heater_on = np.zeros(n, dtype=bool)
        self.capped = np.zeros(n, dtype=bool)
        self._n_capped = 0  # satellites capped (count of ``capped``)
        self._cap_w = np.full(n, np.inf)
        self._env = {"beta": np.zeros(n)}
        self.sunlight = StepSunlight(n)
        self.view = EarthView(n)
        # Electrical ledger since start, J: generated = dissipated + stored (chemical).
        self.e_array_j = np.zeros(n)
        self.e_dissipated_j = np.zeros(n)
        self.e_unserved_j = np.zeros(n)

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
        n = self.n_sats
        dt = max(float(ctx.dt_s), 0.0)
        # Array output per unit of visible Sun, and the step's mean visible fraction.
        unit_w, sun = self._array_power_per_sunlit_w(shared)
        p_avail = unit_w * sun.mean

        # Heaters: thermostats on the previous step's temperatures.
        temp_batt = shared.get("temp_battery_k")
        if temp_batt is not None:
            self.heater_on = thermostat(self.heater_on, temp_batt < p.heater_on_k,
                                        temp_batt > p.heater_off_k)
        heater = np.where(self.heater_on, p.heater_power_w, 0.0)
        self._loop_thermostat(shared)
        loop_heater = np.where(self.loop_heater_on, p.loop_heater_power_w, 0.0)
        bus = np.full(n, p.bus_power_w)
        self._apply_mirror_drivers(shared, bus, heater)
        demand = shared.get("compute_power_w")
        if demand is None:  # no compute model yet: a fixed load that obeys the cap
            payload = np.minimum(p.compute_load_w, self._cap_w)
        else:
            payload = np.fmax(np.asarray(demand, dtype=np.float64), 0.0)  # NaN -> 0
        base = bus + heater + loop_heater

        health = degraded_frac(shared.get("battery_health_frac"))
        capacity_j = np.full(n, p.battery_capacity_wh * J_PER_WH)
        if health is not None:
            capacity_j *= health
        eta_r = p.regulation_efficiency_frac
        soc = self.soc_state
        supply = p_avail * eta_r
        flows = self._balance(supply, base, payload, soc, capacity_j, dt)
        # A step that crosses the shadow edge is two segments, sunlit then dark (or the
        # reverse): a full battery cannot bank the sunlit part's surplus for the dark part.
        cross, tau = sun.crossed, sun.tau
        if cross.size and dt > 0.0:
            args = (base[cross], payload[cross])
            first = self._balance(unit_w[cross] * sun.before[cross] * eta_r, *args,
                                  soc[cross], capacity_j[cross], tau * dt)
            second = self._balance(unit_w[cross] * sun.after[cross] * eta_r, *args,
                                   soc[cross] + first["d_soc"], capacity_j[cross],
                                   (1.0 - tau) * dt)
            for key, value in flows.items():
                if key == "d_soc":
                    value[cross] = first[key] + second[key]
                else:  # step means of powers
                    value[cross] = tau * first[key] + (1.0 - tau) * second[key]
        soc += flows["d_soc"]
        load, charge, discharge = flows["load"], flows["charge"], flows["discharge"]
        reg_loss = flows["array_used"] * (1.0 - eta_r)
        batt_loss = (charge * (1.0 - p.charge_efficiency_frac)
                     + discharge * (1.0 / p.discharge_efficiency_frac - 1.0))
        if dt > 0.0:
            self.e_array_j += flows["array_used"] * dt
            self.e_dissipated_j += (load + reg_loss + batt_loss) * dt
            self.e_unserved_j += flows["unserved"] * dt

        self._update_cap(ctx, supply, base, payload, capacity_j)

        self.p_solar.array[:] = p_avail
        self.p_load.array[:] = load
        self.p_battery.array[:] = charge - discharge
        self.soc.array[:] = soc
        self.cap.array[:] = self._cap_w
        self.heater.array[:] = heater
        self.loop_heater.array[:] = loop_heater
        # Unserved bus and heater power is not dissipated either: the bus browns out first,
        # then the battery heater, then the loop heater.
        short = flows["unserved_base"]
        bus_served, heater_served, loop_served = bus, heater, loop_heater
        if short.any():  # rare: the battery is empty and the arrays short of the bus
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
        )

    def _balance(self, supply: np.ndarray, base: np.ndarray, payload: np.ndarray,
                 soc: np.ndarray, capacity_j: np.ndarray, dt: float | np.ndarray
                 ) -> dict[str, np.ndarray]:
        """Share supply among loads and battery over an interval; all (m,), W, J, s.

        The arrays feed the loads first; a surplus charges the battery (up to its charge
        limit and ``soc_max_frac``), a deficit discharges it (down to empty and its discharge
        limit). What neither can give is not drawn: compute is shed first, then the bus.

        Returns:
            Mean powers over the interval (``load``, ``payload`` served, ``charge`` and
            ``discharge`` at the terminals, ``array_used`` before regulation, ``unserved``,
            ``unserved_base``) and ``d_soc``, the change of state of charge.
        """
        p = self.params
        eta_c, eta_d = p.charge_efficiency_frac, p.discharge_efficiency_frac
        net = supply - base - payload
        if np.any(dt > 0.0):
            with np.errstate(divide="ignore", invalid="ignore"):
                room_w = np.maximum(p.soc_max_frac - soc, 0.0) * capacity_j / (eta_c * dt)
                stock_w = np.maximum(soc, 0.0) * capacity_j * eta_d / dt
        else:  # the epoch: show the flows, change nothing
            room_w = np.zeros_like(supply)
            stock_w = np.where(capacity_j > 0.0, np.inf, 0.0)
        charge = np.minimum(np.maximum(net, 0.0), np.minimum(room_w, p.max_charge_w))
        deficit = np.maximum(-net, 0.0)
        discharge = np.minimum(deficit, np.minimum(stock_w, p.max_discharge_w))
        unserved = deficit - discharge
        shed = np.minimum(unserved, payload)
        unserved_base = unserved - shed
        load = base + payload - unserved
        with np.errstate(divide="ignore", invalid="ignore"):
            d_soc = np.where(capacity_j > 0.0,
                             (charge * eta_c - discharge / eta_d) * dt / capacity_j, 0.0)
        return {"load": load, "payload": payload - shed, "charge": charge,
                "discharge": discharge,
                "array_used": (load + charge - discharge) / p.regulation_efficiency_frac,
                "unserved": unserved, "unserved_base": unserved_base, "d_soc": d_soc}

    def _loop_thermostat(self, shared: dict[str, Any]) -> None:
        """Loop heater: on when the chips or the radiator run cold, off when both are warm.

        Two thermostats drive the one heater on the compute cold plate: the chips'
        (``loop_heater_on_k`` / ``loop_heater_off_k``) and the radiator's freeze guard
        (``freeze_guard_on_k`` / ``freeze_guard_off_k``), whose heat the bypass valve passes
        on to the radiator once the chips are at the loop setpoint. Previous step's
        temperatures; NaN (unknown) keeps the heater as it is.
        """
        p = self.params
        temp_c = shared.get("temp_compute_k")
        if temp_c is None:
            return
        cold = temp_c < p.loop_heater_on_k
        warm = temp_c > p.loop_heater_off_k
        temp_r = shared.get("temp_radiator_k")
        if temp_r is not None:
            cold |= temp_r < p.freeze_guard_on_k
            warm &= temp_r > p.freeze_guard_off_k
        self.loop_heater_on = thermostat(self.loop_heater_on, cold, warm)

    @staticmethod
    def _apply_mirror_drivers(shared: dict[str, Any], bus: np.ndarray,
                              heater: np.ndarray) -> None:
        """Take measured bus and heater power for satellites a live testbed mirrors.

        The mirror writes them, in place, into last step's ``bus_power_w`` and
        ``heater_power_w`` arrays before power steps (twin/mirror.py).
        """
        mirrored = shared.get("mirror_sat")
        if mirrored is None or not len(mirrored):
            return
        for key, array in (("bus_power_w", bus), ("heater_power_w", heater)):
            measured = shared.get(key)
            if isinstance(measured, np.ndarray) and measured.shape == array.shape:
                array[mirrored] = measured[mirrored]

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
        env = self._env
        beta = shared.get("beta_deg")
        if beta is not None:
            np.copyto(env["beta"], beta, where=np.isfinite(beta))
        alt = shared.get("alt_km")
        if alt is not None:
            self.view.update(alt)
        sun = shared.get("sun_gcrs_km")
        s_w_m2 = SOLAR_CONSTANT_W_M2 if sun is None else float(
            solar_flux_w_m2(np.linalg.norm(sun)))
        step_sun = self.sunlight.update(shared)

        cos_i = sun_exposure(self.thermal.attitude, env["beta"]).array_cos
        eta_ref = p.array_efficiency_ref_frac
        # Quasi-steady array temperature: absorbed Sun minus the electrical output, plus
        # Earth IR on both faces (seen as vertical plates), radiated from both faces.
        sun_in = s_w_m2 * cos_i
        eps = p.array_emissivity_front + p.array_emissivity_back
        ir_in = self.thermal.earth_ir_w_m2 * eps * self.view.f_vertical
        temp = np.sqrt(np.sqrt((sun_in * step_sun.mean * (p.array_absorptivity - eta_ref)
                                + ir_in) * (1.0 / (eps * STEFAN_BOLTZMANN_W_M2_K4))))
        self.temp_array.array[:] = temp
        eta = eta_ref * np.maximum(1.0 + p.array_temp_coeff_per_k * (temp - p.array_ref_temp_k),
                                   0.0)
        health = degraded_frac(shared.get("solar_health_frac"))
        if health is not None:
            eta = eta * health
        return p.array_area_m2 * eta * sun_in, step_sun

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
        if not self._n_capped and soc.min() > p.soc_reserve_frac and capacity_j.min() > 0.0:
            return  # nothing capped and nothing can engage: the cap stays +inf everywhere
        no_battery = capacity_j <= 0.0
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
