"""The lifecycle model: decay, station keeping, disposal and ageing of every node.

Steps after thermal and reads this step's orbit, power and thermal and compute's dose;
what it publishes (``LifecycleOutputs``) the orbit, faults, power and thermal models read
one step later (ageing is slow). Off, the model has no fields and no totals, so a scenario
without ``[lifecycle]`` runs and publishes exactly what it did before.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from twin.core.interfaces import LifecycleOutputs
from twin.core.subsystem import (
    CheckedHandler,
    CommandHandler,
    CommandRejected,
    Field,
    StepContext,
    make_field,
)
from twin.models.lifecycle import ageing
from twin.models.lifecycle.decay import (
    EARTH_RADIUS_KM,
    SECONDS_PER_YEAR,
    STANDARD_GRAVITY_M_S2,
    LifetimeTable,
    drag_dv_m_s,
    hohmann_dv_m_s,
    mean_motion_rad_s,
    propellant_for_dv_kg,
)
from twin.models.lifecycle.density import density_profile, solar_flux_sfu
from twin.models.lifecycle.params import LifecycleParams
from twin.protocol.codec import ok
from twin.protocol.commands import CommandSpec, sat_arg
from twin.scenario import Scenario, parse_section
from twin.scenario.loader import mean_semi_major_axes_km

OPERATING, DISPOSED, DERELICT, REENTERED = range(4)
STATE_LABELS = {OPERATING: "operating", DISPOSED: "disposed", DERELICT: "derelict",
                REENTERED: "reentered"}
DISPOSAL_MARGIN = 0.8
"""Disposal aims at re-entry within this fraction of the rule's years: the lifetime is
predicted at the density of the day, and the thermosphere's semiannual swing alone makes
a 4.5-year prediction made at an equinox last 5.3 years (docs/models.md)."""
SLOW_INTERVAL_S = 3600.0
"""Decay, station keeping, end of life and ageing advance at most this often: every law is
exact for any interval (closed forms in time), and a node's ageing in an hour is far below
anything another model feels. Battery discharge is counted every step."""

COMMANDS: tuple[CommandSpec, ...] = (
    # The summary reads before "on <node>" in a confirmation ("retire_node: take out of ...").
    CommandSpec("retire_node", "take out of service for good, with the end-of-life disposal "
                "burn", "hazardous", (sat_arg("the node"),), role="engineer"),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""

FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "accelerators_installed_count": ("count", "working accelerators on operating nodes "
                                     "(installed capacity left)"),
    "accelerators_lost_count": ("count", "accelerators lost for good: random failures and "
                                "nodes past end of life"),
    "nodes_operating_count": ("count", "nodes still operating"),
    "reentries_count": ("count", "nodes re-entered since the start"),
    "reentries_this_year_count": ("count", "nodes re-entered in this simulated year "
                                  "(years counted from the epoch)"),
    "mass_in_orbit_kg": ("kg", "mass of the nodes still in orbit, dry and propellant: the "
                         "e-waste account"),
    "propellant_used_kg": ("kg", "propellant burned for station keeping and disposal"),
    "disposal_noncompliant_count": ("count", "nodes out of service whose predicted "
                                    "re-entry breaks the disposal rule"),
    "array_health_mean_frac": ("1", "mean solar array output left from ageing, over the "
                               "nodes still in orbit (re-entries leave the mean: it can "
                               "rise)"),
    "battery_capacity_mean_frac": ("1", "mean battery capacity left from fade, over the "
                                   "nodes still in orbit (worn nodes re-entering leave the "
                                   "mean: it can rise)"),
    "radiator_absorptivity_rise": ("1", "rise of the radiator coating's solar absorptivity"),
    "mean_altitude_min_km": ("km", "lowest mean altitude of a node still in orbit"),
}
"""The fleet totals this model publishes when on: name -> (unit, description)."""


def years_range(years: np.ndarray) -> str:
    """``2.7 yr``, or ``2.6 to 2.9 yr`` where the values differ at one decimal."""
    low, high = f"{years.min():.1f}", f"{years.max():.1f}"
    return f"{low} yr" if low == high else f"{low} to {high} yr"


class LifecycleModel:
    """Decay, station keeping, disposal and ageing, vectorized over the fleet."""

    name = "lifecycle"
    reads: tuple[str, ...] = ("orbit", "environment", "compute", "power", "thermal")
    publishes = "lifecycle"

    def __init__(self, scenario: Scenario, accelerators_per_node: int,
                 battery_capacity_wh: float) -> None:
        p = parse_section(LifecycleParams, scenario, "lifecycle")
        self.params = p
        self.active = "lifecycle" in scenario.sections and p.enabled
        self.scenario = scenario
        n = len(scenario.satellites)
        self.n_sats = n
        self.installed = int(accelerators_per_node)
        self.battery_capacity_wh = float(battery_capacity_wh)
        self.outputs = LifecycleOutputs()
        self.t0_utc = scenario.epoch_utc.timestamp()
        # Its own random stream: the lifecycle's draws leave every other model's as it was.
        self.rng = np.random.default_rng([scenario.seed, 0x11FEC7C1E])
        # Mean altitude at launch: from the SGP4 mean motion of each node's elements.
        a0_km = mean_semi_major_axes_km(scenario.satellites)
        self.alt0_km = a0_km - EARTH_RADIUS_KM
        # The state only an active lifecycle steps, and its fields, are for no node when it
        # is off (73 MB at a million); what the other models read stays one per node.
        k = n if self.active else 0
        self.n0_rad_s = mean_motion_rad_s(self.alt0_km[:k])
        self.ballistic = p.ballistic_m2_kg
        f = make_field
        self.alt = f("mean_alt_km", "<f8", (n,), "km", "Mean altitude (semi-major axis "
                     "less the equator radius), after decay and manoeuvres")
        self.alt.array[:] = self.alt0_km
        self.lifetime = f("lifetime_yr", "<f4", (k,), "yr",
                          "Predicted time to re-entry left to drag alone, from now")
        self.propellant = f("propellant_kg", "<f4", (k,), "kg", "Propellant left",
                            fill=p.propellant_kg)
        self.state = f("lifecycle_state", "|u1", (n,), "code",
                       "0 operating, 1 disposed, 2 derelict, 3 re-entered", labels=STATE_LABELS)
        self.array = f("array_health_frac", "<f4", (n,), "1",
                       "Solar array output left from ageing and radiation", fill=1.0)
        self.battery = f("battery_capacity_frac", "<f4", (n,), "1",
                         "Battery capacity left from cycle and calendar fade", fill=1.0)
        self.cycles = f("battery_cycles", "<f4", (k,), "count",
                        "Equivalent full battery cycles since the start")
        self.lost = f("accelerators_lost", "|u1", (n,), "count",
                      "Accelerators lost for good (failures, end of life)")
        self._prop = np.full(k, p.propellant_kg)
        self._phase = np.zeros(n)
        self._cycle_loss = np.zeros(k)
        self._calendar_loss = np.zeros(k)
        self._temp_integral = np.zeros(k)  # ∫ T dt of the battery since the last advance, K s
        self._age_s = 0.0
        self._pending_s = 0.0  # simulated time not yet advanced by the slow laws, s
        self._pending_cycles = np.zeros(k)  # battery cycles over it
        self._pending_cycle_rate = np.zeros(k)  # ∫ C-rate x cycles over it (a weight)
        self._table: LifetimeTable | None = None
        self._table_t = -math.inf
        self._reentries_by_year: Counter[int] = Counter()  # simulated year -> re-entries
        self._propellant_used_kg = 0.0
        self._noncompliant = np.zeros(k, dtype=bool)
        # The disposal plan: each node out of service at design life (or earlier), down
        # within the rule's years after that. When each went out of service, s of age.
        self._retired_s = np.full(k, np.nan)
        self.due = f("reentry_due_yr", "<f4", (k,), "yr",
                     "Years left before the disposal plan wants the node down (negative: "
                     "overdue; 0 re-entered or no rule)")
        self._lost_version = 0
        self._retire = np.zeros(k, dtype=bool)  # retirements commanded, for the next step
        self._retire_pending = False  # any of them (no scan of a million flags a step)
        self._fleet: dict[str, Any] | None = None  # totals of the last slow advance
        self._publish()

    # ---------------------------------------------------------------------------------
    # The contract

    def fields(self) -> list[Field]:
        if not self.active:
            return []
        return [self.alt, self.lifetime, self.propellant, self.state, self.array,
                self.battery, self.cycles, self.lost, self.due]

    def step(self, ctx: StepContext) -> None:
        dt = max(float(ctx.dt_s), 0.0)
        if not self.active:
            return
        self._refresh_table(self.t0_utc + self._age_s)
        if dt > 0.0:
            self._count_discharge(ctx, dt)
            self._pending_s += dt * self.params.time_acceleration
        if self._pending_s < SLOW_INTERVAL_S and self.lifetime.array.any() and \
                not self._retire_pending:  # (a commanded retirement is done at once)
            return
        interval, self._pending_s = self._pending_s, 0.0
        if interval > 0.0:
            self._age_s += interval
            self._orbits(ctx, interval)
            self._end_of_life(ctx)
            self._ageing(ctx, interval)
        table = self._table
        assert table is not None
        in_orbit = self.state.array != REENTERED
        self.lifetime.array[:] = np.where(
            in_orbit, table.lifetime_s(self.alt.array, self.ballistic) / SECONDS_PER_YEAR, 0.0)
        self._plan(in_orbit)
        self._fleet = None
        self._publish()

    def fleet(self) -> dict[str, float]:
        if not self.active:
            return {}
        if self._fleet is None:  # they change only when the slow laws advance
            self._fleet = self.summary(totals_only=True)
        return dict(self._fleet)

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {"active": self.active, "ballistic_m2_kg": self.ballistic,
                "disposal_years": p.disposal_years,
                # msgpack map keys are strings on the wire (meta is read strict).
                "states": {str(code): label for code, label in STATE_LABELS.items()}}

    def commands(self) -> dict[str, CommandHandler]:
        # Checked before the confirmation it needs: a node that cannot be retired is
        # refused at once, not after the operator confirmed.
        return {"retire_node": CheckedHandler(self.retire_node, self.check_retire)}

    def check_retire(self, request: dict[str, Any]) -> None:
        """Raise ``CommandRejected`` where ``retire_node`` cannot apply now."""
        name = self.scenario.satellites[request["sat"]].name
        if not self.active:
            raise CommandRejected("this twin's scenario has no [lifecycle] table: its nodes "
                                  "have no service life to end")
        sat = int(request["sat"])
        state = int(self.state.array[sat])
        if state != OPERATING:
            raise CommandRejected(f"{name} is already out of service ({STATE_LABELS[state]})")
        if self._retire[sat]:
            raise CommandRejected(f"{name}: its retirement is already commanded (next step)")

    def retire_node(self, request: dict[str, Any]) -> dict[str, Any]:
        """``retire_node``: the node leaves service at the next step, as at end of life
        (its disposal burn, with the scenario's reliability, else derelict)."""
        self.check_retire(request)
        sat = int(request["sat"])
        self._retire[sat] = True
        self._retire_pending = True
        return ok(sat=sat, effective="next step")

    # ---------------------------------------------------------------------------------
    # For the sweep and the benches: the lifecycle's account in one call

    def summary(self, totals_only: bool = False) -> dict[str, Any]:
        """The fleet totals (``FLEET_TOTALS``) and, unless ``totals_only``,
        ``reentries_by_year`` (a list: re-entries in simulated years 0, 1, ...)."""
        state = self.state.array
        operating = state == OPERATING
        in_orbit = state != REENTERED
        year = int(self._age_s // SECONDS_PER_YEAR)
        working = self.installed - self.lost.array.astype(np.int64)
        totals: dict[str, Any] = {
            "accelerators_installed_count": int(working[operating].sum()),
            "accelerators_lost_count": int(self.lost.array.sum(dtype=np.int64)),
            "nodes_operating_count": int(np.count_nonzero(operating)),
            "reentries_count": sum(self._reentries_by_year.values()),
            "reentries_this_year_count": self._reentries_by_year[year],
            "mass_in_orbit_kg": float(np.count_nonzero(in_orbit) * self.params.node_mass_kg
                                      + (self._prop[in_orbit].sum() if self.active else
                                         np.count_nonzero(in_orbit) * self.params.propellant_kg)),
            "propellant_used_kg": float(self._propellant_used_kg),
            "disposal_noncompliant_count": (int(np.count_nonzero(self._noncompliant
                                                                 & in_orbit))
                                            if self.active else 0),
            "array_health_mean_frac": float(self.array.array[in_orbit].mean()
                                            if in_orbit.any() else 0.0),
            "battery_capacity_mean_frac": float(self.battery.array[in_orbit].mean()
                                                if in_orbit.any() else 0.0),
            "radiator_absorptivity_rise": float(self.outputs.radiator_absorptivity_rise or 0.0),
            "mean_altitude_min_km": float(self.alt.array[in_orbit].min()
                                          if in_orbit.any() else 0.0),
        }
        if not totals_only:
            totals["reentries_by_year"] = [self._reentries_by_year[y] for y in range(year + 1)]
        return totals

    # ---------------------------------------------------------------------------------
    # Steps

    def _refresh_table(self, t_utc: float) -> None:
        p = self.params
        if self._table is not None and t_utc - self._table_t < p.density_update_days * 86400.0:
            return
        f107 = solar_flux_sfu(t_utc, p.f107_sfu, p.solar_cycle_amplitude_sfu, p.solar_max_year)
        self._table = LifetimeTable(density_profile(p.density_model, t_utc, f107, p.ap),
                                    p.reentry_altitude_km)
        self._table_t = t_utc

    def _orbits(self, ctx: StepContext, dt: float) -> None:
        """Station keeping where it holds, free decay elsewhere, re-entries."""
        p, table = self.params, self._table
        assert table is not None
        state, alt = self.state.array, self.alt.array
        operating = state == OPERATING
        keeping = operating & p.station_keeping
        if keeping.any():
            dv = drag_dv_m_s(table, alt[keeping], self.ballistic, dt)
            burn = np.minimum(propellant_for_dv_kg(p.node_mass_kg + self._prop[keeping], dv,
                                                   p.isp_s), self._prop[keeping])
            self._prop[keeping] -= burn
            self._propellant_used_kg += float(burn.sum())
        drifting = (state != REENTERED) & ~keeping
        if not drifting.any():
            return
        before = alt[drifting]
        after = np.maximum(table.advance(before, self.ballistic, dt), p.reentry_altitude_km)
        alt[drifting] = after
        n_mean = 0.5 * (mean_motion_rad_s(before) + mean_motion_rad_s(after))
        flown_s = dt / p.time_acceleration  # the orbit's own time: phase is not aged
        self._phase[drifting] = np.mod(
            self._phase[drifting] + (n_mean - self.n0_rad_s[drifting]) * flown_s,
            2.0 * np.pi)
        reentered = np.flatnonzero(drifting & (alt <= p.reentry_altitude_km))
        if reentered.size:
            state[reentered] = REENTERED
            self._reentries_by_year[int(self._age_s // SECONDS_PER_YEAR)] += int(reentered.size)
            self._lose_all(reentered)
            self._node_events(ctx, "reentry", "info", reentered,
                              f"re-entered (mean altitude at {p.reentry_altitude_km:.0f} km)")

    def _end_of_life(self, ctx: StepContext) -> None:
        """Operating nodes past design life, out of propellant or with no accelerator
        left go out of service: disposal manoeuvre, or derelict."""
        p, table = self.params, self._table
        assert table is not None
        state, alt = self.state.array, self.alt.array
        operating = state == OPERATING
        years = p.disposal_years
        target_km = None if years is None else float(table.altitude_at(
            np.array([DISPOSAL_MARGIN * years * SECONDS_PER_YEAR * self.ballistic]))[0])
        reserve = self._disposal_propellant(alt, target_km)
        out_of_fuel = p.station_keeping & (self._prop <= reserve) if target_km else (
            p.station_keeping & (self._prop <= 0.0))
        commanded = np.zeros(0, dtype=np.intp)
        if self._retire_pending:
            commanded = np.flatnonzero(operating & self._retire)
            self._retire[:] = False
            self._retire_pending = False
        done = operating & ((self._age_s >= p.design_life_yr * SECONDS_PER_YEAR)
                            | out_of_fuel | (self.lost.array >= self.installed))
        done[commanded] = True
        nodes = np.flatnonzero(done)
        if nodes.size == 0:
            return
        if commanded.size:
            self._node_events(ctx, "retired", "info", commanded,
                              "retired by command: out of service")
        self._retired_s[nodes] = self._age_s
        self._lose_all(nodes)
        ok = (self.rng.random(nodes.size) < p.disposal_reliability_frac) if years else \
            np.zeros(nodes.size, dtype=bool)
        carried, failed = nodes[ok], nodes[~ok]
        state[failed] = DERELICT
        if carried.size and target_km is not None:
            burning = alt[carried] > target_km  # the others' drag is quick enough as they are
            self._dispose(carried, target_km)
            state[carried] = DISPOSED
            for group, what in ((carried[burning], f"disposal burn towards {target_km:.0f} km"),
                                 (carried[~burning], "no burn needed, drag alone brings it "
                                  "down in time")):
                if group.size:
                    life = table.lifetime_s(alt[group], self.ballistic) / SECONDS_PER_YEAR
                    self._node_events(ctx, "disposal", "info", group,
                                      f"end of life: {what}, re-entry predicted in "
                                      f"{years_range(life)}")
        if failed.size:
            self._node_events(ctx, "disposal_failed", "warning", failed,
                              "end of life: no disposal manoeuvre, left to drag")
        if years is not None:
            life = table.lifetime_s(alt[nodes], self.ballistic) / SECONDS_PER_YEAR
            self._noncompliant[nodes] = life > years

    def _plan(self, in_orbit: np.ndarray) -> None:
        """Years left to each node's re-entry deadline: out of service at design life (or
        when it went), plus the rule's years."""
        years = self.params.disposal_years
        if years is None:
            self.due.array[:] = 0.0
            return
        retire_s = np.where(np.isnan(self._retired_s),
                            self.params.design_life_yr * SECONDS_PER_YEAR, self._retired_s)
        due = (retire_s + years * SECONDS_PER_YEAR - self._age_s) / SECONDS_PER_YEAR
        self.due.array[:] = np.where(in_orbit, due, 0.0)

    def _disposal_propellant(self, alt: np.ndarray, target_km: float | None) -> np.ndarray:
        """Propellant the disposal burn from ``alt`` needs, kg (0 where drag suffices)."""
        if target_km is None:
            return np.zeros_like(alt)
        dv = np.where(alt > target_km, hohmann_dv_m_s(alt, target_km), 0.0)
        return propellant_for_dv_kg(self.params.node_mass_kg + self._prop, dv,
                                    self.params.isp_s)

    def _dispose(self, nodes: np.ndarray, target_km: float) -> None:
        """Lower ``nodes`` towards ``target_km`` with the propellant they have."""
        p = self.params
        alt = self.alt.array
        start = alt[nodes]
        need_dv = np.where(start > target_km, hohmann_dv_m_s(start, target_km), 0.0)
        wet = p.node_mass_kg + self._prop[nodes]
        have_dv = p.isp_s * STANDARD_GRAVITY_M_S2 * np.log(wet / p.node_mass_kg)
        dv = np.minimum(need_dv, have_dv)
        # Short of propellant: as far down as it goes (Δa ≈ 2 a Δv / v for small Δv).
        a_m = (EARTH_RADIUS_KM + start) * 1e3
        v = np.sqrt(3.986004418e14 / a_m)
        reached = np.where(dv >= need_dv, np.minimum(start, target_km),
                           start - 2.0 * a_m * dv / v / 1e3)
        burn = propellant_for_dv_kg(wet, dv, p.isp_s)
        self._prop[nodes] -= burn
        self._propellant_used_kg += float(burn.sum())
        alt[nodes] = reached

    def _ageing(self, ctx: StepContext, dt: float) -> None:
        p = self.params
        years = self._age_s / SECONDS_PER_YEAR
        dose = ctx.compute.dose_gy
        array_dose = (np.zeros(self.n_sats) if dose is None
                      else np.nan_to_num(np.asarray(dose, dtype=float)) * p.array_dose_factor)
        self.array.array[:] = ageing.array_health(
            years, p.array_loss_frac_per_yr, array_dose, p.array_radiation_c,
            p.array_radiation_dx_gy)
        self._battery(ctx, dt)
        self.outputs.radiator_absorptivity_rise = ageing.radiator_alpha_rise(
            years, p.radiator_alpha_rise, p.radiator_alpha_tau_yr)
        operating = self.state.array == OPERATING
        working = np.where(operating, self.installed - self.lost.array.astype(np.int64), 0)
        failed = ageing.accelerator_failures(self.rng, working,
                                             p.accelerator_failure_frac_per_yr,
                                             dt / SECONDS_PER_YEAR)
        nodes = np.flatnonzero(failed)
        if nodes.size:
            self.lost.array[nodes] += failed[nodes].astype(np.uint8)
            self._lost_version += 1
            self._node_events(ctx, "accelerator_failure", "warning", nodes,
                              "accelerator(s) failed for good (random failure)")

    def _count_discharge(self, ctx: StepContext, dt: float) -> None:
        """This step's eclipse discharge in equivalent full cycles, its C-rate and the
        battery temperature, kept for the next slow advance."""
        temp = ctx.thermal.temp_battery_k
        temp_k = (np.full(self.n_sats, ageing.REFERENCE_TEMP_K) if temp is None
                  else np.nan_to_num(np.asarray(temp, dtype=float), nan=ageing.REFERENCE_TEMP_K))
        scale = self.params.time_acceleration  # each discharge stands for this many
        self._temp_integral += temp_k * (dt * scale)
        power, sun = ctx.power, ctx.environment.sunlit_step
        if power.bus_power_w is None or sun is None or self.battery_capacity_wh <= 0:
            return
        capacity_wh = self.battery_capacity_wh * np.maximum(self.battery.array, 1e-3)
        load_w = np.nan_to_num(np.asarray(power.bus_power_w, dtype=float)
                               + np.asarray(power.payload_power_w, dtype=float)
                               + np.asarray(power.heater_power_w, dtype=float))
        dark = 1.0 - np.clip(np.nan_to_num(np.asarray(sun.mean, dtype=float), nan=1.0),
                             0.0, 1.0)
        cycles = dark * (dt * scale) * load_w / 3600.0 / capacity_wh
        self._pending_cycles += cycles
        self._pending_cycle_rate += cycles * load_w / capacity_wh

    def _battery(self, ctx: StepContext, dt: float) -> None:
        """Cycle fade from the eclipse discharge since the last advance (at its
        discharge-weighted C-rate), calendar fade over the ``dt`` of simulated seconds since
        the last advance at the battery's mean temperature over them."""
        p = self.params
        temp = ctx.thermal.temp_battery_k
        temp_k = (np.full(self.n_sats, ageing.REFERENCE_TEMP_K) if temp is None
                  else np.nan_to_num(np.asarray(temp, dtype=float), nan=ageing.REFERENCE_TEMP_K))
        cycles = self._pending_cycles
        if cycles.any():
            c_rate = self._pending_cycle_rate / np.maximum(cycles, 1e-300)
            self.cycles.array[:] += cycles
            self._cycle_loss = ageing.advance_cycle_loss(self._cycle_loss, cycles, c_rate,
                                                         temp_k)
            cycles[:] = 0.0
            self._pending_cycle_rate[:] = 0.0
        if dt > 0.0:  # at the battery's mean temperature over the interval
            mean_temp_k = self._temp_integral / dt
            self._calendar_loss = ageing.advance_calendar_loss(
                self._calendar_loss, dt / SECONDS_PER_YEAR, p.battery_calendar_frac_per_sqrt_yr,
                p.battery_calendar_ea_j_mol, mean_temp_k)
            self._temp_integral[:] = 0.0
        self.battery.array[:] = np.clip(1.0 - self._cycle_loss - self._calendar_loss, 0.0, 1.0)

    def _lose_all(self, nodes: np.ndarray) -> None:
        """Every accelerator of ``nodes`` out of service for good (payload off)."""
        self.lost.array[nodes] = self.installed
        self._lost_version += 1

    def _node_events(self, ctx: StepContext, kind: str, severity: str, nodes: np.ndarray,
                     what: str) -> None:
        """One event per node; many in one step are one summary (twin.core.events)."""
        names = self.scenario.satellites
        ctx.events.raise_node_events(kind, severity, nodes,
                                     lambda i: f"{names[int(nodes[i])].name}: {what}")

    def _publish(self) -> None:
        out = self.outputs
        if out.radiator_absorptivity_rise is None:
            out.radiator_absorptivity_rise = 0.0
        out.array_health_frac = self.array.array
        out.battery_capacity_frac = self.battery.array
        out.accelerators_lost = self.lost.array
        out.accelerators_lost_version = self._lost_version
        operating = self.state.array == OPERATING
        retired = out.out_of_service_nodes
        if retired is None or retired.size != self.n_sats - np.count_nonzero(operating) or (
                retired.size and np.any(operating[retired])):
            # A new array only when the set changes: compute and power key on its identity.
            retired = np.flatnonzero(~operating)
            retired.flags.writeable = False
            out.out_of_service_nodes = retired
            out.in_service = operating if self.active else None
        moved = np.flatnonzero((self.alt.array != self.alt0_km) | (self._phase != 0.0))
        out.orbit_offset_nodes = moved
        out.orbit_radius_scale = ((EARTH_RADIUS_KM + self.alt.array)
                                  / (EARTH_RADIUS_KM + self.alt0_km))
        out.orbit_phase_rad = self._phase
